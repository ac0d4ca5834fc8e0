//! The prices-and-limits file (`deploy/prices/*.yaml`): versioned, dated data, never code.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Schema version of the file.
    pub version: u32,
    /// The date the figures were taken, `YYYY-MM-DD`.
    pub as_of: String,
    /// AWS region.
    pub region: String,
    /// Currency of every price.
    pub currency: String,
    /// AWS Lambda.
    pub lambda: Lambda,
    /// API Gateway.
    pub api_gateway: ApiGateway,
    /// SageMaker real-time endpoints.
    pub sagemaker_realtime: Realtime,
    /// SageMaker serverless endpoints.
    pub sagemaker_serverless: Serverless,
    /// SageMaker asynchronous endpoints.
    pub sagemaker_async: Async,
    /// A generic container (Kubernetes, ECS, EC2).
    pub container: Container,
}

/// AWS Lambda prices and limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // field names say it; the YAML file documents sources
pub struct Lambda {
    pub x86_64_gb_second: f64,
    pub arm64_gb_second: f64,
    pub per_million_requests: f64,
    pub ephemeral_gb_second: f64,
    pub mb_per_vcpu: f64,
    pub max_vcpus: f64,
    pub memory_sizes_mb: Vec<u32>,
    pub max_memory_mb: u32,
    pub timeout_s: f64,
    pub sync_payload_bytes: u64,
    pub zip_direct_upload_bytes: u64,
    pub unzipped_bytes: u64,
    pub image_bytes: u64,
    pub tmp_max_bytes: u64,
    pub init_budget_s: f64,
    pub init_billed: bool,
    pub idle_reclaim_s: f64,
    pub s3_mb_per_s: f64,
}

/// API Gateway prices.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ApiGateway {
    pub http_per_million_requests: f64,
}

/// One instance type.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Instance {
    pub name: String,
    pub vcpus: f64,
    pub memory_gib: f64,
    pub per_hour: f64,
}

/// SageMaker real-time endpoints.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Realtime {
    pub instances: Vec<Instance>,
    pub payload_bytes: u64,
    pub timeout_s: f64,
    pub min_instances: u32,
}

/// SageMaker serverless endpoints.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Serverless {
    pub gb_second: f64,
    pub data_per_gb: f64,
    pub memory_sizes_mb: Vec<u32>,
    pub payload_bytes: u64,
    pub timeout_s: f64,
    pub max_concurrency: u32,
    pub mb_per_vcpu: f64,
    pub max_vcpus: f64,
    pub cold_start_s: f64,
}

/// SageMaker asynchronous endpoints.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Async {
    pub payload_bytes: u64,
    pub timeout_s: f64,
    pub scale_from_zero_s: f64,
}

/// A generic always-on container.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Container {
    pub per_vcpu_hour: f64,
    pub per_gib_hour: f64,
    pub min_replicas: u32,
}

impl Prices {
    /// Parse a prices file.
    pub fn parse(text: &str) -> Result<Self> {
        let p: Prices = serde_norway::from_str(text).map_err(|e| Error::Prices(e.to_string()))?;
        if p.version != 1 {
            return Err(Error::Prices(format!(
                "version {} (this build reads version 1)",
                p.version
            )));
        }
        if p.sagemaker_realtime.instances.is_empty() || p.lambda.memory_sizes_mb.is_empty() {
            return Err(Error::Prices("instance and memory lists must not be empty".into()));
        }
        Ok(p)
    }

    /// The prices file this build ships (`deploy/prices/aws-us-east-1.yaml`).
    pub fn builtin() -> Self {
        // The file is part of the source tree and parsed by a test; a failure here is a bug.
        #[allow(clippy::expect_used)]
        Self::parse(BUILTIN).expect("the built-in prices file parses (tested)")
    }
}

/// The shipped prices file.
pub const BUILTIN: &str = include_str!("../../../deploy/prices/aws-us-east-1.yaml");
