//! Skull-stripped brain MRI, four co-registered sequences (T1, T1ce, T2,
//! FLAIR) like a BraTS case, with a glioma labelled the BraTS way:
//! 1 necrotic / non-enhancing core, 2 peritumoural oedema, 4 enhancing rim.
//!
//! Voxels outside the brain are exactly 0 (as in BraTS, which is what lets a
//! pipeline z-score each channel over the non-zero voxels). Inside: CSF
//! (a rim under the brain surface with sulcal indentations, and two lateral
//! ventricles), a grey matter ribbon and deep grey nuclei, white matter.
//! Contrasts follow the usual appearance: T1 white > grey > CSF; T2 CSF
//! bright; FLAIR CSF dark, oedema brightest; the rim bright on T1ce only.
//! Each channel has its own scanner gain, a smooth bias field and Rician
//! noise, all independent of the tumour.

use std::f32::consts::PI;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::draw::{cover, mix, normal, smoothstep, substream, uniform, Noise3};

/// Channel order of [`BrainMri::channels`].
pub const MRI_SEQUENCES: [&str; 4] = ["t1", "t1ce", "t2", "flair"];

/// Order of [`BrainMri::region_masks`]: the three BraTS evaluation regions.
pub const BRATS_REGIONS: [&str; 3] = ["tumour_core", "whole_tumour", "enhancing_tumour"];

const NECROSIS: u8 = 1;
const OEDEMA: u8 = 2;
const ENHANCING: u8 = 4;

/// One synthetic multi-sequence brain MRI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrainMri {
    /// (d, h, w) = (n, n, n); voxel (z, y, x) is at `(z * h + y) * w + x`.
    /// y grows towards the back of the head, z upwards.
    pub shape: [usize; 3],
    /// Per [`MRI_SEQUENCES`], arbitrary scanner units, 0 outside the brain.
    pub channels: [Vec<f32>; 4],
    /// BraTS labels: 0 background / healthy, 1 necrotic core, 2 oedema,
    /// 4 enhancing tumour.
    pub seg: Vec<u8>,
}

impl BrainMri {
    fn region(&self, labels: &[u8]) -> Vec<u8> {
        self.seg
            .iter()
            .map(|s| u8::from(labels.contains(s)))
            .collect()
    }

    /// Labels 1 and 4.
    pub fn tumour_core(&self) -> Vec<u8> {
        self.region(&[NECROSIS, ENHANCING])
    }

    /// Labels 1, 2 and 4.
    pub fn whole_tumour(&self) -> Vec<u8> {
        self.region(&[NECROSIS, OEDEMA, ENHANCING])
    }

    /// Label 4.
    pub fn enhancing_tumour(&self) -> Vec<u8> {
        self.region(&[ENHANCING])
    }

    /// The three regions in [`BRATS_REGIONS`] order (0/1 per voxel).
    pub fn region_masks(&self) -> [Vec<u8>; 3] {
        [
            self.tumour_core(),
            self.whole_tumour(),
            self.enhancing_tumour(),
        ]
    }

    /// 1 where the brain is (any channel non-zero): the voxels to
    /// normalise over.
    pub fn brain_mask(&self) -> Vec<u8> {
        (0..self.seg.len())
            .map(|i| u8::from(self.channels.iter().any(|c| c[i] != 0.0)))
            .collect()
    }

    pub fn has_tumour(&self) -> bool {
        self.seg.iter().any(|&s| s != 0)
    }
}

/// A brain MRI of `size`^3 voxels, always with a tumour.
pub fn brain_mri(rng: &mut StdRng, size: usize) -> BrainMri {
    brain_mri_with_rate(rng, size, 1.0)
}

/// A brain MRI whose tumour is present with probability `tumour_rate`
/// (clamped to [0, 1]); without one, `seg` is all 0.
pub fn brain_mri_with_rate(rng: &mut StdRng, size: usize, tumour_rate: f64) -> BrainMri {
    let rate = if tumour_rate.is_finite() {
        tumour_rate.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let present = rng.gen_bool(rate);
    render(rng, size, present)
}

/// Relative tissue values per sequence (white matter T1 = 1).
type Contrast = [f32; 4];

/// A smooth random relative change of radius by direction,
/// `sum a cos(f <dir, u> + p)`.
#[derive(Debug, Clone)]
struct Wobble3 {
    terms: Vec<([f32; 3], f32, f32, f32)>,
}

impl Wobble3 {
    fn new(rng: &mut StdRng, amp: f32, terms: usize) -> Self {
        let terms = (0..terms)
            .map(|_| {
                (
                    unit(rng),
                    uniform(rng, 1.5, 3.5),
                    uniform(rng, 0.0, 2.0 * PI),
                    uniform(rng, 0.3, 1.0) * amp / (terms as f32).sqrt(),
                )
            })
            .collect();
        Wobble3 { terms }
    }

    fn at(&self, dir: [f32; 3]) -> f32 {
        self.terms
            .iter()
            .map(|&(u, f, p, a)| a * (f * dot(dir, u) + p).cos())
            .sum()
    }
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: [f32; 3]) -> f32 {
    dot(a, a).sqrt()
}

fn unit(rng: &mut StdRng) -> [f32; 3] {
    let v = [normal(rng), normal(rng), normal(rng)];
    let l = norm(v).max(1e-6);
    v.map(|c| c / l)
}

/// A random rotation (rows are the new axes), from a uniform quaternion.
fn rotation(rng: &mut StdRng) -> [[f32; 3]; 3] {
    let q = [normal(rng), normal(rng), normal(rng), normal(rng)];
    let l = (q.iter().map(|v| v * v).sum::<f32>()).sqrt().max(1e-6);
    let [a, b, c, d] = q.map(|v| v / l);
    [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a - b * b + c * c - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a - b * b - c * c + d * d,
        ],
    ]
}

/// An irregular blob: a randomly oriented ellipsoid of unit volume scale,
/// radius perturbed by direction.
#[derive(Debug, Clone)]
struct Blob {
    centre: [f32; 3],
    axes: [[f32; 3]; 3],
    scale: [f32; 3],
    wobble: Wobble3,
}

impl Blob {
    fn new(rng: &mut StdRng, centre: [f32; 3], amp: f32) -> Self {
        let mut scale = [0.0f32; 3].map(|_| uniform(rng, 0.8, 1.25));
        let g = (scale[0] * scale[1] * scale[2]).cbrt();
        scale = scale.map(|s| s / g);
        Blob {
            centre,
            axes: rotation(rng),
            scale,
            wobble: Wobble3::new(rng, amp, 4),
        }
    }

    /// Distance from the centre in the blob's metric, over its radius
    /// factor: the blob of radius R is `{p: rho(p) <= R}`.
    fn rho(&self, p: [f32; 3]) -> f32 {
        let d = [0, 1, 2].map(|i| p[i] - self.centre[i]);
        let l = [0, 1, 2].map(|i| dot(self.axes[i], d) / self.scale[i]);
        let r = norm(l);
        if r < 1e-6 {
            return 0.0;
        }
        r / (1.0 + self.wobble.at(l.map(|c| c / r)))
    }
}

#[derive(Debug, Clone)]
struct Ventricle {
    side: f32,
    centre: [f32; 3],
    half: [f32; 3],
    bow: f32,
}

#[derive(Debug, Clone)]
struct Brain {
    centre: [f32; 3],
    semi: [f32; 3],
    cos: f32,
    sin: f32,
    outline: Wobble3,
    csf_rim: f32,
    sulcal_depth: f32,
    gm_thick: f32,
    folds: Noise3,
    ventricles: [Ventricle; 2],
    nuclei: [([f32; 3], [f32; 3]); 2],
    wm: Contrast,
    gm: Contrast,
    csf: Contrast,
    oedema: Contrast,
    enhancing: Contrast,
    necrosis: Contrast,
    gain: [f32; 4],
    bias: Vec<Noise3>,
    bias_amp: [f32; 4],
    noise: [f32; 4],
    texture: Noise3,
}

/// Per-voxel geometry.
#[derive(Debug, Clone, Copy)]
struct Geo {
    p: [f32; 3],
    /// Brain-frame coordinates (x right, y back, z up).
    l: [f32; 3],
    /// Radial depth below the brain surface (voxels, negative outside).
    d: f32,
}

impl Brain {
    fn sample(rng: &mut StdRng, n: usize) -> Brain {
        let nf = n as f32;
        let semi = [
            nf * uniform(rng, 0.33, 0.4),
            nf * uniform(rng, 0.37, 0.44),
            nf * uniform(rng, 0.32, 0.4),
        ];
        let centre = [0, 1, 2].map(|i| {
            let room = (nf * 0.48 - semi[i] * 1.04).max(0.0);
            nf / 2.0 + uniform(rng, -room, room)
        });
        let angle = uniform(rng, -0.15, 0.15);
        let septum = (nf * 0.015).max(0.8);
        let vw = (nf * uniform(rng, 0.03, 0.05)).max(1.0);
        let v_off = nf * uniform(rng, -0.03, 0.02);
        let z_off = nf * uniform(rng, 0.0, 0.06);
        let bow = uniform(rng, 0.2, 0.6);
        let ventricles = [-1.0f32, 1.0].map(|side| Ventricle {
            side,
            centre: [side * (septum / 2.0 + vw), v_off, z_off],
            half: [
                vw * uniform(rng, 0.9, 1.1),
                (nf * uniform(rng, 0.1, 0.15)).max(2.5),
                (nf * uniform(rng, 0.06, 0.09)).max(1.5),
            ],
            bow,
        });
        let nuclei = [-1.0f32, 1.0].map(|side| {
            (
                [
                    side * (septum / 2.0 + 2.0 * vw + nf * uniform(rng, 0.04, 0.06)),
                    v_off + nf * uniform(rng, 0.0, 0.04),
                    z_off - nf * uniform(rng, 0.02, 0.05),
                ],
                [
                    nf * uniform(rng, 0.03, 0.045),
                    nf * uniform(rng, 0.05, 0.07),
                    nf * uniform(rng, 0.04, 0.06),
                ],
            )
        });
        let t1_gm = uniform(rng, 0.7, 0.78);
        let t1_csf = uniform(rng, 0.22, 0.32);
        let t1_oed = uniform(rng, 0.6, 0.68);
        Brain {
            centre,
            semi,
            cos: angle.cos(),
            sin: angle.sin(),
            outline: Wobble3::new(rng, 0.03, 4),
            csf_rim: (nf * 0.02).max(0.6) * uniform(rng, 0.8, 1.4),
            sulcal_depth: nf * uniform(rng, 0.03, 0.06),
            gm_thick: (nf * 0.04).max(1.0) * uniform(rng, 0.85, 1.15),
            folds: Noise3::new(rng, n, (nf / 10.0).max(2.0)),
            ventricles,
            nuclei,
            wm: [1.0, 1.0, uniform(rng, 0.5, 0.58), uniform(rng, 0.66, 0.74)],
            gm: [
                t1_gm,
                t1_gm + 0.02,
                uniform(rng, 0.72, 0.8),
                uniform(rng, 0.84, 0.92),
            ],
            csf: [
                t1_csf,
                t1_csf + 0.02,
                uniform(rng, 1.6, 2.0),
                uniform(rng, 0.15, 0.25),
            ],
            oedema: [
                t1_oed,
                t1_oed + 0.01,
                uniform(rng, 1.15, 1.35),
                uniform(rng, 1.3, 1.6),
            ],
            enhancing: [
                uniform(rng, 0.62, 0.72),
                uniform(rng, 1.5, 1.9),
                uniform(rng, 0.85, 1.0),
                uniform(rng, 1.05, 1.25),
            ],
            necrosis: [
                uniform(rng, 0.3, 0.42),
                uniform(rng, 0.32, 0.45),
                uniform(rng, 1.45, 1.8),
                uniform(rng, 0.7, 1.05),
            ],
            gain: [0; 4].map(|_| uniform(rng, 300.0, 3000.0)),
            bias: (0..4)
                .map(|_| Noise3::new(rng, n, (nf / 2.0).max(2.0)))
                .collect(),
            bias_amp: [0; 4].map(|_| uniform(rng, 0.05, 0.15)),
            noise: [0; 4].map(|_| uniform(rng, 0.02, 0.04)),
            texture: Noise3::new(rng, n, (nf / 12.0).max(1.5)),
        }
    }

    fn geo(&self, p: [f32; 3]) -> Geo {
        let d = [0, 1, 2].map(|i| p[i] - self.centre[i]);
        let l = [
            d[0] * self.cos + d[1] * self.sin,
            -d[0] * self.sin + d[1] * self.cos,
            d[2],
        ];
        let r = norm(l);
        let depth = if r < 1e-6 {
            self.semi[0]
        } else {
            let e = norm([0, 1, 2].map(|i| l[i] / self.semi[i]));
            let rho = e / (1.0 + self.outline.at(l.map(|c| c / r)));
            r * (1.0 - rho) / rho
        };
        Geo { p, l, d: depth }
    }

    fn ventricle_sd(&self, k: usize, g: &Geo) -> f32 {
        let v = &self.ventricles[k];
        let dv = g.l[1] - v.centre[1];
        let t = (dv / v.half[1]).clamp(-1.0, 1.0);
        let cu = v.centre[0] + v.side * v.bow * v.half[0] * (1.0 - t * t);
        let hw = v.half[0] * (1.0 + 0.3 * (-t).max(0.0));
        let q = norm([
            (g.l[0] - cu) / hw,
            dv / v.half[1],
            (g.l[2] - v.centre[2]) / v.half[2],
        ]);
        (q - 1.0) * hw
    }

    /// Signed distance to CSF (voxels, negative inside CSF).
    fn csf_sd(&self, g: &Geo) -> f32 {
        let fold = ((self.folds.at(g.p) - 0.2) / 0.8).max(0.0);
        let surface = g.d - self.csf_rim - self.sulcal_depth * fold;
        surface
            .min(self.ventricle_sd(0, g))
            .min(self.ventricle_sd(1, g))
    }

    /// Healthy tissue, one value per sequence.
    fn tissue(&self, g: &Geo) -> Contrast {
        let fold = ((self.folds.at(g.p) - 0.2) / 0.8).max(0.0);
        let s = g.d - self.csf_rim - self.sulcal_depth * fold;
        let mut wm_frac = smoothstep(self.gm_thick - 0.75, self.gm_thick + 0.75, s);
        for (c, h) in &self.nuclei {
            let q = norm([0, 1, 2].map(|i| (g.l[i] - c[i]) / h[i]));
            wm_frac *= smoothstep(0.7, 1.1, q);
        }
        let csf = cover(s)
            .max(cover(self.ventricle_sd(0, g)))
            .max(cover(self.ventricle_sd(1, g)));
        let tex = 0.02 * self.texture.at(g.p);
        [0, 1, 2, 3].map(|c| {
            let tissue = mix(self.gm[c], self.wm[c], wm_frac) * (1.0 + tex);
            mix(tissue, self.csf[c], csf)
        })
    }
}

#[derive(Debug, Clone)]
struct Tumour {
    core: Blob,
    oedema: Blob,
    fingers: Noise3,
    r_core: f32,
    r_necrosis: f32,
    necrosis_wobble: Wobble3,
    r_oedema: f32,
    texture: Noise3,
}

impl Tumour {
    fn sample(rng: &mut StdRng, brain: &Brain, n: usize) -> Tumour {
        let nf = n as f32;
        let [a, b, c] = brain.semi;
        let volume = 4.0 / 3.0 * PI * a * b * c;
        let fraction = uniform(rng, 0.02, 0.15);
        let mut r_oedema = (3.0 * fraction * volume / (4.0 * PI)).cbrt();
        let r_core = (r_oedema * uniform(rng, 0.45, 0.7)).max(2.0);
        r_oedema = r_oedema.max(1.2 * r_core);
        let rim = (r_core * uniform(rng, 0.3, 0.55)).max(1.3);
        let mut r_necrosis = ((r_core - rim).min((r_core - 1.0) / 1.15)).max(0.0);
        if r_necrosis < 0.8 {
            r_necrosis = 0.0;
        }
        // The centre with the most room for the core, out of up to 60.
        let mut best = (f32::MIN, brain.centre);
        for _ in 0..60 {
            let p = [0, 1, 2].map(|i| brain.centre[i] + uniform(rng, -0.7, 0.7) * brain.semi[i]);
            let g = brain.geo(p);
            let room = g.d - brain.csf_rim - 1.3 * r_core;
            if room > best.0 {
                best = (room, p);
            }
            if room > 0.0 {
                break;
            }
        }
        let centre = best.1;
        let shift = [0; 3].map(|_| uniform(rng, -0.15, 0.15) * r_oedema);
        Tumour {
            core: Blob::new(rng, centre, 0.12),
            oedema: Blob::new(rng, [0, 1, 2].map(|i| centre[i] + shift[i]), 0.2),
            fingers: Noise3::new(rng, n, (r_oedema / 1.5).max(2.0)),
            r_core,
            r_necrosis,
            necrosis_wobble: Wobble3::new(rng, 0.15, 3),
            r_oedema,
            texture: Noise3::new(rng, n, (nf / 16.0).max(1.5)),
        }
    }

    /// (oedema, core, necrosis) coverage of voxel `g`.
    fn cover(&self, brain: &Brain, g: &Geo) -> (f32, f32, f32) {
        let inside = cover(-g.d);
        if inside <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        let rho_o = self.oedema.rho(g.p);
        let reach = self.r_oedema * (1.0 + 0.25 * self.fingers.at(g.p));
        let oedema = cover(rho_o - reach) * (1.0 - cover(brain.csf_sd(g))) * inside;
        let rho = self.core.rho(g.p);
        let core = cover(rho - self.r_core) * inside;
        let necrosis = if self.r_necrosis > 0.0 {
            let d = [0, 1, 2].map(|i| g.p[i] - self.core.centre[i]);
            let r = norm(d).max(1e-6);
            let radius = self.r_necrosis * (1.0 + self.necrosis_wobble.at(d.map(|c| c / r)));
            cover(rho - radius) * inside
        } else {
            0.0
        };
        (oedema, core, necrosis)
    }
}

fn render(rng: &mut StdRng, size: usize, present: bool) -> BrainMri {
    let n = size;
    let mut anatomy_rng = substream(rng);
    let mut noise_rng = substream(rng);
    let mut tumour_rng = substream(rng);
    let brain = Brain::sample(&mut anatomy_rng, n);
    let tumour = Tumour::sample(&mut tumour_rng, &brain, n);

    let total = n * n * n;
    let mut channels: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0f32; total]);
    let mut seg = vec![0u8; total];
    for i in 0..total {
        let p = [
            (i % n) as f32 + 0.5,
            ((i / n) % n) as f32 + 0.5,
            (i / (n * n)) as f32 + 0.5,
        ];
        let g = brain.geo(p);
        let inside = cover(-g.d);
        if inside <= 0.0 {
            continue;
        }
        let mut v = brain.tissue(&g);
        if present {
            let (oedema, core, necrosis) = tumour.cover(&brain, &g);
            if oedema > 0.0 || core > 0.0 {
                let t = 1.0 + 0.06 * tumour.texture.at(g.p);
                for (c, value) in v.iter_mut().enumerate() {
                    *value = mix(*value, brain.oedema[c] * t, oedema);
                    *value = mix(*value, brain.enhancing[c] * t, core);
                    *value = mix(*value, brain.necrosis[c] * t, necrosis);
                }
                seg[i] = if necrosis >= 0.5 {
                    NECROSIS
                } else if core >= 0.5 {
                    ENHANCING
                } else if oedema >= 0.5 {
                    OEDEMA
                } else {
                    0
                };
            }
        }
        for (c, channel) in channels.iter_mut().enumerate() {
            let bias = 1.0 + brain.bias_amp[c] * brain.bias[c].at(p);
            let s = v[c] * inside;
            let sigma = brain.noise[c];
            // Magnitude images have Rician noise; never exactly 0 inside.
            let (n1, n2) = (normal(&mut noise_rng), normal(&mut noise_rng));
            let m = ((s + sigma * n1).powi(2) + (sigma * n2).powi(2)).sqrt();
            channel[i] = (brain.gain[c] * bias * m).max(f32::MIN_POSITIVE);
        }
    }
    BrainMri {
        shape: [n, n, n],
        channels,
        seg,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn mean_where(values: &[f32], keep: impl Fn(usize) -> bool) -> f32 {
        let (mut s, mut k) = (0.0f64, 0usize);
        for (i, &v) in values.iter().enumerate() {
            if keep(i) {
                s += v as f64;
                k += 1;
            }
        }
        (s / k.max(1) as f64) as f32
    }

    #[test]
    fn same_seed_same_volume() {
        let a = brain_mri(&mut StdRng::seed_from_u64(4), 32);
        let b = brain_mri(&mut StdRng::seed_from_u64(4), 32);
        assert_eq!(a, b);
        let c = brain_mri(&mut StdRng::seed_from_u64(5), 32);
        assert_ne!(a.channels[0], c.channels[0]);
    }

    #[test]
    fn regions_nest_and_tumour_is_sized() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut necrotic = 0;
        for i in 0..24 {
            let size = [32, 48][i % 2];
            let m = brain_mri(&mut rng, size);
            assert_eq!(m.shape, [size; 3]);
            assert!(m.seg.iter().all(|s| [0, 1, 2, 4].contains(s)));
            let [tc, wt, et] = m.region_masks();
            for v in 0..m.seg.len() {
                assert!(et[v] <= tc[v] && tc[v] <= wt[v]);
            }
            let brain = m.brain_mask();
            for v in 0..m.seg.len() {
                assert!(wt[v] == 0 || brain[v] == 1, "tumour outside the brain");
            }
            let frac = wt.iter().map(|&v| v as f32).sum::<f32>()
                / brain.iter().map(|&v| v as f32).sum::<f32>();
            assert!(
                (0.015..0.18).contains(&frac),
                "whole tumour {frac} of brain"
            );
            assert!(et.contains(&1), "an enhancing rim");
            assert!(m.seg.contains(&OEDEMA), "oedema");
            necrotic += usize::from(m.seg.contains(&NECROSIS));
            // Background is exactly zero in every channel.
            for c in &m.channels {
                for v in 0..c.len() {
                    assert_eq!(c[v] == 0.0, brain[v] == 0);
                }
            }
        }
        assert!(necrotic >= 12, "necrosis in most tumours ({necrotic}/24)");
    }

    #[test]
    fn no_tumour_when_asked() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut without = 0;
        for _ in 0..40 {
            let m = brain_mri_with_rate(&mut rng, 32, 0.5);
            without += usize::from(!m.has_tumour());
        }
        assert!(
            (10..=30).contains(&without),
            "{without} of 40 without tumour"
        );
        let m = brain_mri_with_rate(&mut rng, 32, 0.0);
        assert!(!m.has_tumour());
    }

    #[test]
    fn tumour_changes_only_its_own_voxels() {
        for seed in 0..6u64 {
            let n = 32;
            let state = StdRng::seed_from_u64(seed);
            let with = render(&mut state.clone(), n, true);
            let without = render(&mut state.clone(), n, false);
            let wt = with.whole_tumour();
            let near = |i: usize| {
                let (x, y, z) = ((i % n) as i64, ((i / n) % n) as i64, (i / (n * n)) as i64);
                (-2..=2).any(|dz| {
                    (-2..=2).any(|dy| {
                        (-2..=2).any(|dx| {
                            let (a, b, c) = (x + dx, y + dy, z + dz);
                            let inb = |v: i64| (0..n as i64).contains(&v);
                            inb(a)
                                && inb(b)
                                && inb(c)
                                && wt[((c as usize) * n + b as usize) * n + a as usize] == 1
                        })
                    })
                })
            };
            for c in 0..4 {
                for i in 0..n * n * n {
                    if with.channels[c][i] != without.channels[c][i] {
                        assert!(
                            near(i),
                            "seed {seed} channel {c} voxel {i} changed away from the tumour"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sequences_have_their_contrasts() {
        for seed in 0..6u64 {
            let n = 48;
            let state = StdRng::seed_from_u64(seed);
            let brain = Brain::sample(&mut substream(&mut state.clone()), n);
            let m = render(&mut state.clone(), n, true);
            // Healthy tissue from the same volume drawn without the tumour.
            let healthy = render(&mut state.clone(), n, false);
            let (mut wm, mut csf) = (vec![false; n * n * n], vec![false; n * n * n]);
            for i in 0..n * n * n {
                let p = [
                    (i % n) as f32 + 0.5,
                    ((i / n) % n) as f32 + 0.5,
                    (i / (n * n)) as f32 + 0.5,
                ];
                let g = brain.geo(p);
                if g.d < 0.5 {
                    continue;
                }
                let vent = brain.ventricle_sd(0, &g).min(brain.ventricle_sd(1, &g));
                csf[i] = vent < -0.5;
                wm[i] = brain.csf_sd(&g) > brain.gm_thick + 1.5;
            }
            let seg = &m.seg;
            let healthy_mean =
                |c: usize, mask: &[bool]| mean_where(&healthy.channels[c], |i| mask[i]);
            let tumour_mean = |c: usize, label: u8| mean_where(&m.channels[c], |i| seg[i] == label);
            let [t1, t1ce, t2, flair] = [0, 1, 2, 3];
            assert!(
                healthy_mean(t1, &wm) > 2.0 * healthy_mean(t1, &csf),
                "T1 white > CSF"
            );
            assert!(
                healthy_mean(t2, &csf) > 2.0 * healthy_mean(t2, &wm),
                "T2 CSF bright"
            );
            assert!(
                healthy_mean(flair, &csf) < 0.5 * healthy_mean(flair, &wm),
                "FLAIR CSF dark"
            );
            assert!(
                tumour_mean(flair, OEDEMA) > 1.5 * healthy_mean(flair, &wm),
                "FLAIR oedema"
            );
            assert!(
                tumour_mean(t2, OEDEMA) > 1.7 * healthy_mean(t2, &wm),
                "T2 oedema"
            );
            assert!(
                tumour_mean(t1ce, ENHANCING) > 1.3 * healthy_mean(t1ce, &wm),
                "T1ce rim"
            );
            assert!(
                tumour_mean(t1, ENHANCING) < healthy_mean(t1, &wm),
                "rim not bright before contrast"
            );
        }
    }
}
