//! Writes a synthetic CT series (one study, one series, N 512x512 slices,
//! Explicit VR Little Endian) for the SCP benchmark:
//! `cargo run --release -p interop --example write_ct_series -- DIR N`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: write_ct_series DIR N")?);
    let n: u32 = args.next().ok_or("usage: write_ct_series DIR N")?.parse()?;
    std::fs::create_dir_all(&dir)?;
    let base = imaging::write::SynthMeta::phantom("HEAD", 11, 1);
    let (rows, cols) = (512usize, 512usize);
    for i in 1..=n {
        // A disc of soft tissue in air, shifting with the slice.
        let hu: Vec<f32> = (0..rows * cols)
            .map(|k| {
                let (y, x) = ((k / cols) as f32 - 256.0, (k % cols) as f32 - 256.0);
                let r = 180.0 + 20.0 * (i as f32 / 40.0).sin();
                if x * x + y * y < r * r {
                    40.0 + ((x + y + i as f32) % 7.0)
                } else {
                    -1000.0
                }
            })
            .collect();
        let p = dir.join(format!("ct{i:04}.dcm"));
        imaging::write::write_ct_dicom(&p, &hu, rows, cols, &base.slice(i, f64::from(i)))?;
    }
    println!("wrote {n} slices to {}", dir.display());
    Ok(())
}
