//! Drawing helpers shared by the phantoms: random draws, smooth noise,
//! partial-volume coverage and boxes.

use std::f32::consts::{PI, TAU};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::LesionBox;

/// An independent stream seeded from `rng`. Anatomy, noise and each finding
/// get one, so switching a finding off leaves every other draw unchanged.
pub(crate) fn substream(rng: &mut StdRng) -> StdRng {
    StdRng::seed_from_u64(rng.gen())
}

/// Uniform in `[lo, hi)`; never panics on an empty range (returns `lo`).
pub(crate) fn uniform(rng: &mut StdRng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.gen::<f32>()
}

/// Standard normal draw (Box-Muller: rand 0.8 has no normal distribution
/// without the rand_distr crate).
pub(crate) fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Fraction of a pixel inside a shape whose signed distance (pixels,
/// negative inside) at the pixel centre is `sd`: a one-pixel ramp, which is
/// what keeps sub-pixel lesions visible as partial-volume signal.
pub(crate) fn cover(sd: f32) -> f32 {
    (0.5 - sd).clamp(0.0, 1.0)
}

pub(crate) fn mix(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

pub(crate) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// `a - b` wrapped into `(-PI, PI]`.
pub(crate) fn angle_diff(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(TAU);
    if d > PI {
        d - TAU
    } else {
        d
    }
}

/// A smooth random perturbation of an outline, `sum a_k cos(k t + p_k)`,
/// used as a relative change of radius.
#[derive(Debug, Clone)]
pub(crate) struct Wobble {
    terms: Vec<(f32, f32, f32)>,
}

impl Wobble {
    /// Harmonics 2..=`max_k`, each amplitude up to `amp`.
    pub(crate) fn new(rng: &mut StdRng, amp: f32, max_k: u32) -> Self {
        let terms = (2..=max_k.max(2))
            .map(|k| {
                (
                    uniform(rng, 0.0, amp) / (k as f32 - 1.0).sqrt(),
                    k as f32,
                    uniform(rng, 0.0, TAU),
                )
            })
            .collect();
        Wobble { terms }
    }

    pub(crate) fn at(&self, t: f32) -> f32 {
        self.terms
            .iter()
            .map(|&(a, k, p)| a * (k * t + p).cos())
            .sum()
    }
}

/// 2D value noise: random values on a coarse grid, smoothly interpolated.
/// Roughly N(0, 1/3) valued, features about `cell` pixels across.
#[derive(Debug, Clone)]
pub(crate) struct Noise2 {
    grid: Vec<f32>,
    gw: usize,
    gh: usize,
    cell: f32,
}

impl Noise2 {
    pub(crate) fn new(rng: &mut StdRng, w: usize, h: usize, cell: f32) -> Self {
        let cell = cell.max(1.0);
        let gw = (w as f32 / cell).ceil() as usize + 2;
        let gh = (h as f32 / cell).ceil() as usize + 2;
        let grid = (0..gw * gh).map(|_| uniform(rng, -1.0, 1.0)).collect();
        Noise2 { grid, gw, gh, cell }
    }

    pub(crate) fn at(&self, x: f32, y: f32) -> f32 {
        let fx = (x / self.cell).clamp(0.0, (self.gw - 2) as f32);
        let fy = (y / self.cell).clamp(0.0, (self.gh - 2) as f32);
        let (ix, iy) = (fx.floor() as usize, fy.floor() as usize);
        let (tx, ty) = (fade(fx - ix as f32), fade(fy - iy as f32));
        let g = |i: usize, j: usize| self.grid[j * self.gw + i];
        let top = mix(g(ix, iy), g(ix + 1, iy), tx);
        let bottom = mix(g(ix, iy + 1), g(ix + 1, iy + 1), tx);
        mix(top, bottom, ty)
    }
}

/// 3D value noise, as [`Noise2`].
#[derive(Debug, Clone)]
pub(crate) struct Noise3 {
    grid: Vec<f32>,
    g: usize,
    cell: f32,
}

impl Noise3 {
    pub(crate) fn new(rng: &mut StdRng, n: usize, cell: f32) -> Self {
        let cell = cell.max(1.0);
        let g = (n as f32 / cell).ceil() as usize + 2;
        let grid = (0..g * g * g).map(|_| uniform(rng, -1.0, 1.0)).collect();
        Noise3 { grid, g, cell }
    }

    pub(crate) fn at(&self, p: [f32; 3]) -> f32 {
        let lim = (self.g - 2) as f32;
        let f = p.map(|v| (v / self.cell).clamp(0.0, lim));
        let i = f.map(|v| v.floor() as usize);
        let t = [
            fade(f[0] - i[0] as f32),
            fade(f[1] - i[1] as f32),
            fade(f[2] - i[2] as f32),
        ];
        let g = |x: usize, y: usize, z: usize| self.grid[(z * self.g + y) * self.g + x];
        let plane = |z: usize| {
            let a = mix(g(i[0], i[1], z), g(i[0] + 1, i[1], z), t[0]);
            let b = mix(g(i[0], i[1] + 1, z), g(i[0] + 1, i[1] + 1, z), t[0]);
            mix(a, b, t[1])
        };
        mix(plane(i[2]), plane(i[2] + 1), t[2])
    }
}

fn fade(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// A finding's mask and box from its per-pixel coverage: the mask is the
/// pixels with `cov >= mask_at` (or, if there are none, the single most
/// covered pixel, when anything is covered at all); the box bounds the mask
/// and every pixel with `cov >= box_at` (`box_at <= mask_at` makes the box
/// take in the partial-volume fringe as well).
pub(crate) fn box_of(
    cov: &[f32],
    w: usize,
    box_at: f32,
    mask_at: f32,
    label: usize,
) -> Option<(LesionBox, Vec<bool>)> {
    let mut mask: Vec<bool> = cov.iter().map(|&c| c >= mask_at).collect();
    if !mask.iter().any(|&m| m) {
        let (best, &c) = cov.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        if c <= 0.0 {
            return None;
        }
        mask[best] = true;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, _) in cov
        .iter()
        .zip(&mask)
        .enumerate()
        .filter(|(_, (&c, &m))| m || c >= box_at)
    {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x + 1);
        y1 = y1.max(y + 1);
    }
    Some((
        LesionBox {
            label,
            x0,
            y0,
            x1,
            y1,
        },
        mask,
    ))
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::super::LesionBox;

    /// The largest |a - b| over pixels outside every box grown by `margin`.
    pub(crate) fn max_diff_outside(
        a: &[f32],
        b: &[f32],
        w: usize,
        boxes: &[LesionBox],
        margin: usize,
    ) -> f32 {
        let mut worst = 0.0f32;
        for (i, (&p, &q)) in a.iter().zip(b).enumerate() {
            let (x, y) = (i % w, i / w);
            let inside = boxes.iter().any(|bx| {
                x + margin >= bx.x0
                    && x < bx.x1 + margin
                    && y + margin >= bx.y0
                    && y < bx.y1 + margin
            });
            if !inside {
                worst = worst.max((p - q).abs());
            }
        }
        worst
    }

    /// Mean of `img` over the pixels of `b` where `keep` holds.
    pub(crate) fn mean_in(
        img: &[f32],
        w: usize,
        b: &LesionBox,
        keep: impl Fn(usize) -> bool,
    ) -> f32 {
        let mut sum = 0.0;
        let mut n = 0usize;
        for y in b.y0..b.y1 {
            for x in b.x0..b.x1 {
                let i = y * w + x;
                if keep(i) {
                    sum += img[i];
                    n += 1;
                }
            }
        }
        if n == 0 {
            f32::NAN
        } else {
            sum / n as f32
        }
    }
}
