//! `medvision models …`: the model registry from the command line.

use std::path::Path;

use anyhow::{bail, Context};
use inference::arch::densenet::DenseNetConfig;
use inference::arch::segresnet::SegResNetConfig;
use inference::demo::{train_demo, DemoBudget};
use inference::pack::{
    sha256_file, ArchSpec, EfficientNetVariant, InputSpec, Manifest, ModelPack, Preprocessing,
    Task, MANIFEST,
};
use inference::registry::Registry;
use inference::weights::{load_state_dict, WeightSource};

use crate::cli::ModelsCmd;
use crate::settings::Settings;

pub fn command(settings: &Settings, cmd: ModelsCmd) -> anyhow::Result<()> {
    let dir = settings.models_dir();
    match cmd {
        ModelsCmd::List { json } => {
            let reg = Registry::scan(&dir, inference_device(&settings.inference_device))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reg.summaries())?);
            } else if reg.packs().is_empty() {
                println!("no model packs in {}", dir.display());
            } else {
                for s in reg.summaries() {
                    println!(
                        "{} {} ({}, {:?}, {}/{}): {}\n  labels: {}\n  sha256: {}",
                        s.name,
                        s.version,
                        s.arch,
                        s.task,
                        s.modality,
                        s.body_part,
                        s.intended_use,
                        s.labels.join(", "),
                        s.sha256
                    );
                }
            }
            for (path, why) in reg.broken() {
                eprintln!("unreadable pack {}: {why}", path.display());
            }
            Ok(())
        }
        ModelsCmd::Verify => {
            let reg = Registry::scan(&dir, inference_device(&settings.inference_device))?;
            let mut failed = reg.broken().len();
            for (path, why) in reg.broken() {
                eprintln!("FAIL {}: {why}", path.display());
            }
            for p in reg.packs() {
                match p.verify() {
                    Ok(()) => println!("ok   {} {}", p.manifest.name, p.manifest.version),
                    Err(e) => {
                        failed += 1;
                        eprintln!("FAIL {}: {e}", p.manifest.name);
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} model pack(s) failed verification");
            }
            println!("{} pack(s) verified", reg.packs().len());
            Ok(())
        }
        ModelsCmd::Import {
            arch,
            labels,
            from,
            source,
            name,
            version,
            modality,
            body_part,
            channels,
            size,
            intended_use,
            license,
        } => {
            let source: WeightSource = source.parse()?;
            let pack = import(
                &dir,
                ImportSpec {
                    arch: &arch,
                    labels,
                    from: &from,
                    source,
                    name: &name,
                    version: &version,
                    modality: &modality,
                    body_part: &body_part,
                    channels,
                    size,
                    intended_use: &intended_use,
                    license: &license,
                },
            )?;
            println!(
                "imported {} {} into {} (sha256 {})",
                pack.manifest.name,
                pack.manifest.version,
                pack.dir.display(),
                pack.manifest.weights_sha256
            );
            Ok(())
        }
        ModelsCmd::TrainDemo { out, seed } => {
            let out = out.unwrap_or(dir);
            let packs = train_demo(&out, &DemoBudget::default(), seed, &mut |line| {
                println!("{line}")
            })?;
            for p in packs {
                println!("{}: {}", p.manifest.name, p.manifest.intended_use);
            }
            Ok(())
        }
    }
}

/// Where models run: the first NVIDIA GPU when the binary is built with
/// the `cuda` feature and one is present (unless `inference_device` is
/// `cpu`), else the CPU. A missing or broken GPU falls back to the CPU with
/// a warning instead of stopping analysis.
pub fn inference_device(setting: &str) -> candle_core::Device {
    if setting.eq_ignore_ascii_case("cpu") {
        return candle_core::Device::Cpu;
    }
    match candle_core::Device::cuda_if_available(0) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "the GPU could not be opened; models run on the CPU");
            candle_core::Device::Cpu
        }
    }
}

pub struct ImportSpec<'a> {
    pub arch: &'a str,
    pub labels: Vec<String>,
    pub from: &'a Path,
    pub source: WeightSource,
    pub name: &'a str,
    pub version: &'a str,
    pub modality: &'a str,
    pub body_part: &'a str,
    pub channels: usize,
    pub size: usize,
    pub intended_use: &'a str,
    pub license: &'a str,
}

/// Reads public weights, checks they fit the architecture (naming the first
/// tensor that does not), and writes a pack with native safetensors.
pub fn import(models_dir: &Path, spec: ImportSpec) -> anyhow::Result<ModelPack> {
    let n = spec.labels.len();
    let (arch, task, input) = match spec.arch {
        "densenet121" => (
            ArchSpec::Densenet121(DenseNetConfig::densenet121(spec.channels, n)),
            Task::Classification,
            radiograph_input(spec.channels, spec.size),
        ),
        a if a.starts_with("efficientnet-b") => {
            let variant: u8 = a["efficientnet-b".len()..]
                .parse()
                .ok()
                .filter(|v| *v <= 7)
                .with_context(|| {
                    format!("unknown architecture `{a}` (efficientnet-b0 … efficientnet-b7)")
                })?;
            (
                ArchSpec::Efficientnet(EfficientNetVariant {
                    variant,
                    in_channels: spec.channels,
                    num_classes: n,
                }),
                Task::Classification,
                InputSpec {
                    size: vec![spec.size, spec.size],
                    channels: spec.channels,
                    raw_range: [-1100.0, 3100.0],
                    min_std: 5.0,
                    preprocessing: Preprocessing::CtWindows {
                        windows: vec![[40.0, 80.0], [80.0, 200.0], [600.0, 2800.0]]
                            [..spec.channels.min(3)]
                            .to_vec(),
                        mean: 0.0,
                        std: 1.0,
                    },
                },
            )
        }
        "segresnet" => {
            let mut c = SegResNetConfig::brats();
            c.in_channels = spec.channels;
            c.out_channels = n;
            (
                ArchSpec::Segresnet(c),
                Task::Segmentation,
                InputSpec {
                    size: vec![spec.size; 3],
                    channels: spec.channels,
                    raw_range: [-1e4, 1e9],
                    min_std: 1e-3,
                    preprocessing: Preprocessing::MriZscore {
                        sequences: ["t1", "t1ce", "t2", "flair"]
                            .iter()
                            .take(spec.channels)
                            .map(|s| s.to_string())
                            .collect(),
                    },
                },
            )
        }
        other => {
            bail!("unknown architecture `{other}` (densenet121, efficientnet-b0 … b7, segresnet)")
        }
    };
    if n == 0 {
        bail!("--labels must name the model's outputs");
    }
    // The name becomes a folder under the models directory: nothing that
    // could climb out of it or hide as a dot-file.
    let name_ok = !spec.name.is_empty()
        && !spec.name.starts_with('.')
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        bail!("--name may use letters, digits, '-', '_' and '.', and must not start with '.'");
    }
    let tensors = load_state_dict(spec.from, spec.source)?;
    let dir = models_dir.join(spec.name);
    if dir.exists() {
        bail!(
            "a pack named {} already exists in {}",
            spec.name,
            models_dir.display()
        );
    }
    // Build once to check every tensor's name and shape before writing.
    inference::weights::build_from_tensors(
        &arch.label(),
        tensors.clone(),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
        |vb| arch.network(vb).map(|_| ()),
    )?;
    let tmp = models_dir.join(format!(".{}.partial", spec.name));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let weights = tmp.join("model.safetensors");
    inference::weights::save_safetensors(&tensors, &weights)?;
    let manifest = Manifest {
        name: spec.name.into(),
        version: spec.version.into(),
        task,
        modality: spec.modality.to_uppercase(),
        body_part: spec.body_part.to_uppercase(),
        labels: spec.labels,
        intended_use: spec.intended_use.into(),
        license: spec.license.into(),
        source: format!(
            "imported from {}",
            spec.from
                .file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        ),
        weights: "model.safetensors".into(),
        weights_sha256: sha256_file(&weights)?,
        weights_source: WeightSource::Native,
        arch,
        input,
        calibration: Vec::new(),
        thresholds: Vec::new(),
        metrics: Default::default(),
    };
    std::fs::write(tmp.join(MANIFEST), manifest.to_toml()?)?;
    std::fs::rename(&tmp, &dir)?;
    Ok(ModelPack::open(&dir)?)
}

fn radiograph_input(channels: usize, size: usize) -> InputSpec {
    InputSpec {
        size: vec![size, size],
        channels,
        raw_range: [0.0, 1.0],
        min_std: 0.02,
        preprocessing: Preprocessing::Radiograph {
            mean: 0.5,
            std: 0.25,
        },
    }
}
