//! SageMaker's container contract, as named constants (overridable by flags for local runs).

/// Port SageMaker sends traffic to.
pub const PORT: u16 = 8080;
/// Environment variable SageMaker may set to move the port.
pub const PORT_ENV: &str = "SAGEMAKER_BIND_TO_PORT";
/// Directory SageMaker unpacks the model artifact into.
pub const MODEL_DIR: &str = "/opt/ml/model";
/// Environment variable naming the model directory.
pub const MODEL_DIR_ENV: &str = "SM_MODEL_DIR";
