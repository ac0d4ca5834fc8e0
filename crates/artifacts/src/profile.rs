//! Static credentials from the AWS shared files (`~/.aws/credentials`, `~/.aws/config`) for
//! `AWS_PROFILE`. `object_store` reads environment variables and instance/task roles but not
//! profiles, and the AWS SDK's loader would pull a second HTTP stack into the binary for a
//! ten-line INI lookup; SSO and `credential_process` profiles are not supported (use the
//! environment or a role for those).

use std::path::PathBuf;

pub(crate) struct Profile {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// `key = value` pairs of section `section` in an INI text.
fn section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

pub(crate) fn load() -> Option<Profile> {
    let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let creds_path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/credentials")))?;
    let config_path = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/config")));
    let creds = std::fs::read_to_string(creds_path).ok()?;
    let kv = section(&creds, &name);
    let get = |kv: &[(String, String)], k: &str| {
        kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    let config_section = if name == "default" { name.clone() } else { format!("profile {name}") };
    let config = config_path.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    let ckv = section(&config, &config_section);
    Some(Profile {
        access_key_id: get(&kv, "aws_access_key_id")?,
        secret_access_key: get(&kv, "aws_secret_access_key")?,
        session_token: get(&kv, "aws_session_token"),
        region: get(&ckv, "region").or_else(|| get(&kv, "region")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_section_only() {
        let text = "[default]\naws_access_key_id = A\n\n[prod]\n# comment\nAWS_ACCESS_KEY_ID=B\nregion = eu-west-1\n";
        assert_eq!(section(text, "default"), vec![("aws_access_key_id".into(), "A".into())]);
        assert_eq!(section(text, "prod").len(), 2);
        assert!(section(text, "none").is_empty());
    }
}
