//! Where the model folders that ship in the repository (`models/<name>`) are found.

use std::path::PathBuf;

/// `models/<name>`: the folder named by `env_var` if set, else the one beside the workspace the binary was built
/// from (a `cargo build` checkout), else `models/<name>` under the current directory.
pub fn bundled_model_dir(name: &str, env_var: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(env_var) {
        return PathBuf::from(dir);
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models").join(name);
    if built.is_dir() {
        return built;
    }
    PathBuf::from("models").join(name)
}
