//! Trains the demo packs into a folder (what `medvision models train-demo`
//! does), with the budget's step counts overridable from the environment:
//! `CXR_STEPS`, `ICH_STEPS`, `SEG_STEPS`, `IMAGE_SIZE`.
use inference::demo::{train_demo, DemoBudget};

fn main() -> inference::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo-packs".into());
    let mut b = DemoBudget::default();
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    b.cxr_steps = env("CXR_STEPS", b.cxr_steps);
    b.ich_steps = env("ICH_STEPS", b.ich_steps);
    b.seg_steps = env("SEG_STEPS", b.seg_steps);
    b.image_size = env("IMAGE_SIZE", b.image_size);
    let t = std::time::Instant::now();
    let packs = train_demo(std::path::Path::new(&out), &b, 2026, &mut |l| {
        println!("[{:>5.0}s] {l}", t.elapsed().as_secs_f64())
    })?;
    for p in packs {
        println!("{} {:?}", p.manifest.name, p.manifest.metrics);
    }
    Ok(())
}
