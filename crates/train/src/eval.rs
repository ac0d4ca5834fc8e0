//! `harken-train eval`: posteriors once, then many decoder configurations over them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use harken_ctc::{Alphabet, BeamOptions, BeamSearch, Hotwords, LmFusion, Posteriors, VocabTrie};

struct Utt {
    audio: String,
    text: String,
    lp: Vec<f32>,
}

fn posteriors(package: &Path, manifest: &Path, cache: &Path) -> Result<(Vec<Utt>, Alphabet)> {
    let pkg = harken_package::Package::open(package)?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(manifest)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    std::fs::create_dir_all(cache)?;
    let index_path = cache.join("index.json");
    let want: Vec<String> =
        lines.iter().filter_map(|l| l["audio"].as_str().map(str::to_owned)).collect();
    let cached: Option<serde_json::Value> =
        std::fs::read(&index_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let hit = cached.as_ref().is_some_and(|c| {
        c["digest"].as_str() == Some(pkg.digest())
            && c["audio"].as_array().is_some_and(|a| {
                a.iter().filter_map(|x| x.as_str()).eq(want.iter().map(String::as_str))
            })
    });
    let labels: Vec<String>;
    let mut utts = Vec::new();
    if hit {
        let c = cached.context("cache index")?;
        labels = serde_json::from_value(c["labels"].clone())?;
        for (i, l) in lines.iter().enumerate() {
            let b = std::fs::read(cache.join(format!("{i:04}.f32")))?;
            let lp =
                b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            utts.push(Utt {
                audio: want[i].clone(),
                text: l["text"].as_str().unwrap_or_default().into(),
                lp,
            });
        }
    } else {
        let engine =
            harken_engine::Engine::load_package(&pkg, &harken_engine::EngineConfig::default())?;
        let mut lab = Vec::new();
        let bar = indicatif::ProgressBar::new(lines.len() as u64);
        for (i, l) in lines.iter().enumerate() {
            let audio = &want[i];
            let pcm = harken_audio::decode_file(
                &base.join(audio),
                &harken_audio::DecodeOptions::whisper(),
            )
            .with_context(|| format!("decoding {audio}"))?;
            let (lp, labels) = engine.ctc_posteriors(&pcm).context("not a CTC package")??;
            lab = labels;
            let bytes: Vec<u8> = lp.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(cache.join(format!("{i:04}.f32")), bytes)?;
            utts.push(Utt {
                audio: audio.clone(),
                text: l["text"].as_str().unwrap_or_default().into(),
                lp,
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        labels = lab;
        let idx = serde_json::json!({"digest": pkg.digest(), "audio": want, "labels": labels, "classes": labels.len() + 1});
        std::fs::write(&index_path, serde_json::to_vec_pretty(&idx)?)?;
    }
    Ok((utts, Alphabet::from_symbols(labels)?))
}

pub(crate) fn run(
    package: &Path,
    manifest: &Path,
    cache: &Path,
    configs: &[String],
    out: &Path,
) -> Result<()> {
    let (utts, alphabet) = posteriors(package, manifest, cache)?;
    let classes = alphabet.len() + 1;
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    for spec in configs {
        let (name, rest) = spec.split_once('=').unwrap_or((spec.as_str(), ""));
        let kv: BTreeMap<&str, &str> =
            rest.split(',').filter(|s| !s.is_empty()).filter_map(|s| s.split_once(':')).collect();
        let num = |k: &str, d: f32| -> Result<f32> {
            kv.get(k).map_or(Ok(d), |v| v.parse().with_context(|| format!("{k}:{v}")))
        };
        let lm = match kv.get("lm") {
            Some(&p) if p != "none" => {
                Some(harken_lm::Model::load(Path::new(p)).with_context(|| format!("loading {p}"))?)
            }
            _ => None,
        };
        let trie = match kv.get("trie") {
            Some(&p) if p != "none" => Some(VocabTrie::from_bytes(&std::fs::read(p)?)?),
            _ => None,
        };
        let hot_words: Vec<String> = kv
            .get("hotwords")
            .map(|h| h.split('|').map(str::to_owned).collect())
            .unwrap_or_default();
        let (hot, _) = Hotwords::new(&alphabet, &hot_words, num("hotword_weight", 5.0)?);
        let beam = num("beam", 32.0)? as usize;
        let (alpha, beta) = (num("alpha", 0.5)?, num("beta", 1.0)?);
        let search = BeamSearch {
            alphabet: &alphabet,
            lm: lm.as_ref().map(|m| LmFusion { model: m, alpha, beta, unk_log10: -10.0 }),
            trie: trie.as_ref(),
            hotwords: (!hot.is_empty()).then_some(&hot),
            options: BeamOptions { beam_width: beam.max(1), ..BeamOptions::default() },
        };
        let started = Instant::now();
        let mut frames = 0;
        for u in &utts {
            let post = Posteriors::new(&u.lp, classes)?;
            frames += post.frames();
            let t = Instant::now();
            let hyp = if beam <= 1 && hot.is_empty() {
                harken_ctc::greedy(&post, &alphabet).text
            } else {
                search.decode(&post).into_iter().next().map(|h| h.text).unwrap_or_default()
            };
            let line = serde_json::json!({"config": name, "audio": u.audio, "ref": u.text, "hyp": hyp, "decode_ms": t.elapsed().as_secs_f64() * 1e3});
            serde_json::to_writer(&mut f, &line)?;
            f.write_all(b"\n")?;
        }
        eprintln!(
            "{name}: {} utterances, {frames} frames decoded in {:.2} s",
            utts.len(),
            started.elapsed().as_secs_f64()
        );
    }
    f.flush()?;
    if utts.is_empty() {
        bail!("the manifest has no utterances");
    }
    Ok(())
}
