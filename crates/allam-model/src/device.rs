//! Choosing the device the model runs on. CPU (Burn's pure-Rust Flex backend) is always there;
//! CUDA and WGPU exist when the crate is built with the `cuda` / `wgpu` features.
//!
//! GPU devices are opened here, eagerly, so that a missing driver or adapter is an error that
//! says so (instead of a panic at the first tensor), and once per process (a wgpu runtime can be
//! initialised only once, so the opened device is kept and handed out again).
//!
//! [`test_devices`] is the one list the backend-generic tests iterate over.
use burn::tensor::Device;

/// Names accepted by [`select`].
pub const DEVICE_NAMES: &[&str] = &["cpu", "cuda", "cuda:N", "wgpu", "vulkan"];

/// The device called `name`:
/// - `cpu` (or `flex`): Burn's Flex backend;
/// - `cuda` or `cuda:N`: the N-th CUDA device (needs `--features cuda` and an NVIDIA driver);
/// - `wgpu`: the best wgpu adapter on whichever graphics API wgpu settles on;
/// - `vulkan`: a wgpu adapter on Vulkan only (never a silent fall-back to OpenGL).
pub fn select(name: &str) -> Result<Device, String> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => (
            k,
            Some(
                i.parse::<usize>()
                    .map_err(|_| format!("bad device index in `{name}` (expected e.g. `cuda:0`)"))?,
            ),
        ),
        None => (name, None),
    };
    if index.is_some() && kind != "cuda" {
        return Err(format!("device `{name}`: only `cuda` takes an index"));
    }
    match kind {
        "cpu" | "flex" => Ok(Device::flex()),
        "cuda" => gpu::cuda(index.unwrap_or(0)),
        "wgpu" => gpu::wgpu(false),
        "vulkan" => gpu::wgpu(true),
        other => Err(format!(
            "unknown device `{other}` (expected one of {})",
            DEVICE_NAMES.join(", ")
        )),
    }
}

/// Whether `device` is the Flex CPU backend (with or without autodiff). CPU-only shortcuts
/// (threaded matrix-vector products, the fused CPU attention kernel) are taken only there.
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// Environment variable naming devices that [`test_devices`] must find (comma-separated, e.g.
/// `vulkan,cuda`): a required device that is missing fails the test instead of being skipped.
pub const REQUIRE_DEVICES_VAR: &str = "ALLAM_REQUIRE_DEVICES";

/// The devices backend-generic tests run on, each with its [`select`] name: always `cpu`;
/// `vulkan` (wgpu pinned to Vulkan, so a missing Vulkan driver is not hidden by a software
/// OpenGL fall-back) when built with `--features wgpu`; `cuda` when built with `--features cuda`.
/// A device that is compiled in but absent on this machine is skipped with its reason printed
/// (once per process, past the test harness's capture) — unless [`REQUIRE_DEVICES_VAR`] names
/// it, then this panics with the reason. Adding a backend means adding one entry here.
pub fn test_devices() -> Vec<(&'static str, Device)> {
    let required = std::env::var(REQUIRE_DEVICES_VAR).unwrap_or_default();
    let required: Vec<&str> = required
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // (name, the cargo feature that builds it in, how to open it: `None` when not built in)
    type Open = fn() -> Option<Result<Device, String>>;
    let candidates: [(&'static str, &str, Open); 3] = [
        ("cpu", "", || Some(Ok(Device::flex()))),
        ("vulkan", "wgpu", || {
            cfg!(feature = "wgpu").then(|| gpu::wgpu(true))
        }),
        ("cuda", "cuda", || cfg!(feature = "cuda").then(|| gpu::cuda(0))),
    ];
    for name in &required {
        assert!(
            candidates.iter().any(|(n, ..)| n == name),
            "{REQUIRE_DEVICES_VAR} names `{name}`, not one of cpu, vulkan, cuda"
        );
    }
    let mut devices = Vec::new();
    for (name, feature, open) in candidates {
        let must = required.contains(&name);
        match open() {
            Some(Ok(device)) => devices.push((name, device)),
            Some(Err(reason)) if must => panic!("{REQUIRE_DEVICES_VAR} requires `{name}`: {reason}"),
            None if must => {
                panic!("{REQUIRE_DEVICES_VAR} requires `{name}`, but this build lacks `--features {feature}`")
            }
            Some(Err(reason)) => skipped(name, &reason),
            None => {}
        }
    }
    devices
}

/// Says, once per process and device, why a device's tests are skipped. Written to the real
/// stderr: the test harness captures `eprintln!` of passing tests, and a skip must be visible.
fn skipped(name: &str, reason: &str) {
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::sync::Mutex;
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.insert(name.to_string()) {
        let _ = writeln!(
            std::io::stderr(),
            "allam: skipping the `{name}` device in these tests: {reason}"
        );
    }
}

mod gpu {
    use burn::tensor::Device;

    /// The wgpu device, on Vulkan only (`pinned`) or on wgpu's choice of API, opened once.
    #[cfg(feature = "wgpu")]
    pub(super) fn wgpu(pinned: bool) -> Result<Device, String> {
        use std::sync::OnceLock;

        use burn::tensor::wgpu::WgpuBackend;
        static AUTO: OnceLock<Result<Device, String>> = OnceLock::new();
        static VULKAN: OnceLock<Result<Device, String>> = OnceLock::new();
        let (cell, api) = if pinned {
            (&VULKAN, WgpuBackend::Vulkan)
        } else {
            (&AUTO, WgpuBackend::Auto)
        };
        cell.get_or_init(|| {
            Device::wgpu_options().graphics_api(api).init().map_err(|e| {
                let hint = if pinned {
                    " (a Vulkan driver is needed: a GPU's, or Mesa's software lavapipe from \
                     `mesa-vulkan-drivers` + `libvulkan1`)"
                } else {
                    ""
                };
                format!("no wgpu device{hint}: {e}")
            })
        })
        .clone()
    }

    #[cfg(not(feature = "wgpu"))]
    pub(super) fn wgpu(_pinned: bool) -> Result<Device, String> {
        Err("device `wgpu` needs allam built with `--features wgpu`".into())
    }

    /// The CUDA device `index`, if the driver is there and has that many devices.
    #[cfg(feature = "cuda")]
    pub(super) fn cuda(index: usize) -> Result<Device, String> {
        use burn::tensor::DeviceType;
        let found = Device::enumerate(DeviceType::Cuda).len();
        if index < found {
            Ok(Device::cuda(index))
        } else if found == 0 {
            Err("no CUDA device (no NVIDIA driver found, or it reports no GPU)".into())
        } else {
            Err(format!("no CUDA device {index}: this machine has {found}"))
        }
    }

    #[cfg(not(feature = "cuda"))]
    pub(super) fn cuda(_index: usize) -> Result<Device, String> {
        Err("device `cuda` needs allam built with `--features cuda`".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_and_bad_ones_explained() {
        assert!(is_cpu(&select("cpu").unwrap()));
        assert!(is_cpu(&select("flex").unwrap()));
        assert!(is_cpu(&Device::flex().autodiff()));
        let err = select("tpu").unwrap_err();
        assert!(err.contains("unknown device `tpu`"), "{err}");
        let err = select("cuda:x").unwrap_err();
        assert!(err.contains("bad device index"), "{err}");
        let err = select("wgpu:1").unwrap_err();
        assert!(err.contains("only `cuda` takes an index"), "{err}");
        #[cfg(not(feature = "cuda"))]
        assert!(select("cuda").unwrap_err().contains("--features cuda"));
        #[cfg(not(feature = "wgpu"))]
        assert!(select("vulkan").unwrap_err().contains("--features wgpu"));
    }

    #[test]
    fn the_test_devices_start_with_the_cpu() {
        let devices = test_devices();
        assert_eq!(devices[0].0, "cpu");
        assert!(is_cpu(&devices[0].1));
        assert!(devices[1..].iter().all(|(_, d)| !is_cpu(d)));
    }
}
