//! Choosing the device the model runs on. CPU (Burn's pure-Rust Flex backend) is always there;
//! CUDA and WGPU exist when the crate is built with the `cuda` / `wgpu` features.
use burn::tensor::Device;

/// Names accepted by [`select`].
pub const DEVICE_NAMES: &[&str] = &["cpu", "cuda", "wgpu"];

/// The device called `name`: `cpu`, `cuda` or `cuda:N`, or `wgpu`.
pub fn select(name: &str) -> Result<Device, String> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => (
            k,
            Some(
                i.parse::<usize>()
                    .map_err(|_| format!("bad device index in `{name}`"))?,
            ),
        ),
        None => (name, None),
    };
    match kind {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index.unwrap_or(0))),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(missing_feature("cuda", index)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(missing_feature("wgpu", index)),
        other => Err(format!(
            "unknown device `{other}` (expected one of {})",
            DEVICE_NAMES.join(", ")
        )),
    }
}

#[allow(dead_code)] // unused when both GPU features are on
fn missing_feature(kind: &str, _index: Option<usize>) -> String {
    format!("device `{kind}` needs allam built with `--features {kind}`")
}
