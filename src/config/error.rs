//! Configuration errors that read like compiler errors: `FILE:LINE:COL: key.path: message`

use std::fmt;
use std::path::{Path, PathBuf};

/// One error, located in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line and column; 0 when the error has no position (I/O).
    pub line: usize,
    /// Column, 1-based (0 when the error is about the whole file).
    pub col: usize,
    /// Dotted key path with indexes, e.g. `dhcp4.subnet[0].pools[1]`; empty when unknown.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// The file could not be read.
    pub fn io(path: &Path, e: &std::io::Error) -> ConfigError {
        ConfigError {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }
    }

    /// An error at byte `offset` of `text`.
    pub fn at(
        path: &Path,
        text: &str,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, col) = line_col(text, offset);
        ConfigError {
            file: path.to_path_buf(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the errors found in one file, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A list of one error.
    pub fn single(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
