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
    /// Prices and limits for one-off backlogs; optional, so that a file without them still
    /// plans yearly traffic.
    #[serde(default)]
    pub backlog: Option<Backlog>,
}

/// Prices and limits used only to plan a one-off backlog (`harken plan --backlog-files`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // field names say it; the YAML file documents sources
pub struct Backlog {
    pub lambda: LambdaScaling,
    pub step_functions: StepFunctions,
    pub s3: S3,
    pub sagemaker: SagemakerBatch,
    pub ec2: Ec2,
    pub aws_batch: AwsBatch,
    pub cluster: Cluster,
}

/// Lambda's concurrency and scaling, and the retry policy for throttles.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LambdaScaling {
    pub concurrency_limit: u32,
    pub new_environments_burst: u32,
    pub new_environments_per_s: f64,
    pub batch_target_s: f64,
    pub retry_base_s: f64,
    pub retry_factor: f64,
    pub retry_max_s: f64,
    pub retry_max_attempts: u32,
}

/// Step Functions (Distributed Map) prices and limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct StepFunctions {
    pub standard_per_transition: f64,
    pub express_per_million_requests: f64,
    pub express_gb_second: f64,
    pub express_memory_mb: u32,
    pub express_max_duration_s: f64,
    pub map_max_concurrency: u32,
    pub child_transitions: f64,
    pub parent_transitions: f64,
    pub max_items_per_batch: u32,
}

/// S3 request and Batch Operations prices.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct S3 {
    pub get_per_thousand: f64,
    pub put_per_thousand: f64,
    pub batch_operations_per_job: f64,
    pub batch_operations_per_million_objects: f64,
}

/// SageMaker Batch Transform and asynchronous endpoints for a backlog.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SagemakerBatch {
    #[serde(default)]
    pub extra_instances: Vec<Instance>,
    pub transform_startup_s: f64,
    pub transform_max_instances: u32,
    pub transform_invocation_timeout_s: f64,
    pub transform_max_payload_bytes: u64,
    pub async_max_instances: u32,
    pub async_request_overhead_s: f64,
    pub async_scale_in_after_s: f64,
    pub async_data_per_gb: f64,
}

/// EC2 instance types with on-demand and Spot prices.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Ec2 {
    pub instances: Vec<Ec2Instance>,
}

/// One EC2 instance type.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Ec2Instance {
    pub name: String,
    pub vcpus: f64,
    pub memory_gib: f64,
    pub on_demand_per_hour: f64,
    pub spot_per_hour: f64,
}

/// AWS Batch on Spot.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct AwsBatch {
    pub max_vcpus: u32,
    pub startup_s: f64,
    pub release_after_idle_s: f64,
    pub interruptions_per_instance_hour: f64,
}

/// A self-managed Ray/Spark cluster of EC2 nodes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Cluster {
    pub max_nodes: u32,
    pub head_nodes: u32,
    pub startup_s: f64,
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
        if p.backlog.as_ref().is_some_and(|b| b.ec2.instances.is_empty()) {
            return Err(Error::Prices("backlog.ec2.instances must not be empty".into()));
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
