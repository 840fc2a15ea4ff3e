//! The serde mirror of the TOML file: kebab-case keys, unknown keys refused, spans kept

use std::path::Path;

use super::error::ConfigErrors;

/// The file as written (placeholder until the mirror lands).
#[derive(Debug, Default)]
pub struct RawConfig {}

pub fn parse(_path: &Path, _text: &str) -> Result<RawConfig, ConfigErrors> {
    Ok(RawConfig {})
}
