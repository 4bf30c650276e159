//! Axial head CT slice at the level of the lateral ventricles, in Hounsfield
//! units, with the five intracranial haemorrhage subtypes of the RSNA 2019
//! challenge.
//!
//! The slice is drawn in a head frame (`u` to the image right, `v` towards
//! the back of the head, i.e. down the image, rotated a few degrees), from
//! the radial depth below the outer skull surface: skull, the CSF rim under
//! it, sulci reaching in from the cortex, the interhemispheric and Sylvian
//! fissures, a grey matter ribbon over white matter, deep grey nuclei and
//! two lateral ventricles. Haemorrhages blend blood (+50..+90 HU) over the
//! brain with partial-volume edges; on a 40/80 brain window blood is bright,
//! brain mid-grey and CSF dark.

use std::f32::consts::{FRAC_PI_2, PI, TAU};

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::draw::{
    angle_diff, box_of, cover, mix, normal, smoothstep, substream, uniform, Noise2, Wobble,
};
use super::{per_finding_probability, LesionBox};

/// Label order of [`HeadCtSlice::labels`] (the RSNA ICH order).
pub const ICH_LABELS: [&str; 6] = [
    "any",
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
];

const ANY: usize = 0;
const EPIDURAL: usize = 1;
const INTRAPARENCHYMAL: usize = 2;
const INTRAVENTRICULAR: usize = 3;
const SUBARACHNOID: usize = 4;
const SUBDURAL: usize = 5;

/// One synthetic head CT slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadCtSlice {
    /// Width and height in pixels.
    pub size: usize,
    /// Hounsfield units, row-major, `size * size`; row 0 is anterior.
    pub hu: Vec<f32>,
    /// Per [`ICH_LABELS`]; `labels[0]` ("any") is the OR of the others.
    pub labels: [bool; 6],
    /// 1 where at least half the pixel is blood, else 0.
    pub lesion_mask: Vec<u8>,
    /// One box per haemorrhage with its subtype's label, and the same box
    /// again with label 0 ("any"). Bilateral intraventricular blood is two
    /// haemorrhages. A box bounds the pixels at least a quarter blood, so
    /// it holds the lesion mask and the partial-volume fringe.
    pub boxes: Vec<LesionBox>,
}

/// A head CT slice of `size` x `size` pixels. Each subtype is present with
/// the same probability, independently, chosen so that about
/// `positive_rate` of slices have a haemorrhage; a slice keeps at most two
/// subtypes (any extra is dropped at random), as the brief for these
/// phantoms asks for 0, 1 or occasionally 2.
///
/// Sizes from 32 up look right; at 16 lesions are a pixel or two.
pub fn head_ct(rng: &mut StdRng, size: usize, positive_rate: f64) -> HeadCtSlice {
    let p = per_finding_probability(positive_rate, 5);
    let mut present: [bool; 5] = std::array::from_fn(|_| rng.gen_bool(p));
    while present.iter().filter(|&&on| on).count() > 2 {
        let on: Vec<usize> = (0..5).filter(|&i| present[i]).collect();
        present[on[rng.gen_range(0..on.len())]] = false;
    }
    render(rng, size, present)
}

/// Draws the slice with subtypes `present[k]` (label `k + 1`). Anatomy,
/// noise and every subtype's parameters are drawn whatever `present` says,
/// so two calls from the same state differ only at the lesions.
fn render(rng: &mut StdRng, size: usize, present: [bool; 5]) -> HeadCtSlice {
    let n = size;
    let mut anatomy_rng = substream(rng);
    let mut noise_rng = substream(rng);
    let mut streams: Vec<StdRng> = (0..5).map(|_| substream(rng)).collect();

    let head = Head::sample(&mut anatomy_rng, n);
    let geos: Vec<Geo> = (0..n * n)
        .map(|i| head.geo((i % n) as f32 + 0.5, (i / n) as f32 + 0.5))
        .collect();
    let lesions = sample_lesions(&head, &geos, &mut streams);

    let mut hu = vec![0.0f32; n * n];
    let drawn: Vec<&Lesion> = lesions
        .iter()
        .filter(|l| present[l.label - 1] && l.found.is_some())
        .collect();
    for (i, g) in geos.iter().enumerate() {
        let mut brain = head.tissue(g);
        for l in &drawn {
            let c = l.cov[i];
            if c > 0.0 {
                let blood = l.hu + 3.0 * head.texture.at(g.x + 17.0, g.y + 29.0);
                brain = mix(brain, blood, c);
            }
        }
        hu[i] = head.compose(g, brain);
    }
    let sigma = uniform(&mut noise_rng, 5.0, 10.0);
    for v in hu.iter_mut() {
        *v += sigma * normal(&mut noise_rng);
    }

    let mut labels = [false; 6];
    let mut lesion_mask = vec![0u8; n * n];
    let mut boxes = Vec::new();
    for l in &drawn {
        if let Some((b, mask)) = &l.found {
            labels[l.label] = true;
            labels[ANY] = true;
            boxes.push(*b);
            boxes.push(LesionBox { label: ANY, ..*b });
            for (m, &inside) in lesion_mask.iter_mut().zip(mask) {
                if inside {
                    *m = 1;
                }
            }
        }
    }
    HeadCtSlice {
        size,
        hu,
        labels,
        lesion_mask,
        boxes,
    }
}

/// A sulcus or fissure: a thin CSF cleft reaching `depth` px in from the
/// cortex at angle `phi`, bending by `bend` radians over its depth.
#[derive(Debug, Clone)]
struct Sulcus {
    phi: f32,
    depth: f32,
    half_width: f32,
    bend: f32,
}

/// A lateral ventricle: a banana bowed outwards, wider at the frontal horn.
#[derive(Debug, Clone)]
struct Ventricle {
    side: f32,
    u: f32,
    v: f32,
    half_w: f32,
    half_h: f32,
    bow: f32,
}

/// Per-pixel geometry in the head frame.
#[derive(Debug, Clone, Copy)]
struct Geo {
    x: f32,
    y: f32,
    u: f32,
    v: f32,
    r: f32,
    phi: f32,
    /// Radial depth below the outer skull surface (px, negative outside).
    d: f32,
    /// Radial depth below the inner table (px, negative in bone and out).
    di: f32,
}

#[derive(Debug, Clone)]
struct Head {
    cx: f32,
    cy: f32,
    cos: f32,
    sin: f32,
    a: f32,
    b: f32,
    outline: Wobble,
    skull: f32,
    scalp: f32,
    hu_scalp: f32,
    hu_cortex: f32,
    hu_diploe: f32,
    hu_gm: f32,
    hu_wm: f32,
    hu_csf: f32,
    csf_rim: f32,
    gm_thick: f32,
    sulci: Vec<Sulcus>,
    ventricles: [Ventricle; 2],
    /// Deep grey nuclei: (u, v, half width, half height).
    nuclei: [(f32, f32, f32, f32); 2],
    texture: Noise2,
}

impl Head {
    fn sample(rng: &mut StdRng, n: usize) -> Head {
        let nf = n as f32;
        let a = nf * uniform(rng, 0.32, 0.39);
        let b = (a * uniform(rng, 1.06, 1.2)).min(nf * 0.44);
        let scalp = (nf * uniform(rng, 0.01, 0.02)).max(0.8);
        // Keep the whole head (outline wobble included) in the image.
        let room_x = (nf * 0.485 - a * 1.03 - scalp).max(0.0);
        let room_y = (nf * 0.485 - b * 1.03 - scalp).max(0.0);
        let cx = nf / 2.0 + uniform(rng, -room_x, room_x);
        let cy = nf / 2.0 + uniform(rng, -room_y, room_y);
        let angle = uniform(rng, -0.17, 0.17);
        let r_mean = (a + b) / 2.0;
        let skull = (nf * uniform(rng, 0.025, 0.04)).max(1.6);
        let inner = r_mean - skull;

        let count = rng.gen_range(14..=22);
        let phi0 = uniform(rng, 0.0, TAU);
        let base_w = (nf * 0.007).max(0.45);
        let mut sulci: Vec<Sulcus> = (0..count)
            .map(|k| Sulcus {
                phi: phi0 + TAU * (k as f32 + uniform(rng, -0.3, 0.3)) / count as f32,
                depth: (nf * uniform(rng, 0.035, 0.075)).max(1.5),
                half_width: base_w * uniform(rng, 0.8, 1.25),
                bend: uniform(rng, -0.4, 0.4) * TAU / count as f32,
            })
            .collect();
        // Sylvian fissures (lateral, slightly anterior) and the
        // interhemispheric fissure, front and back.
        for phi in [-uniform(rng, 0.15, 0.4), PI + uniform(rng, 0.15, 0.4)] {
            sulci.push(Sulcus {
                phi,
                depth: inner * uniform(rng, 0.18, 0.26),
                half_width: base_w * 1.4,
                bend: uniform(rng, -0.1, 0.1),
            });
        }
        sulci.push(Sulcus {
            phi: -FRAC_PI_2,
            depth: inner * uniform(rng, 0.25, 0.35),
            half_width: base_w,
            bend: 0.0,
        });
        sulci.push(Sulcus {
            phi: FRAC_PI_2,
            depth: inner * uniform(rng, 0.2, 0.3),
            half_width: base_w,
            bend: 0.0,
        });

        let septum = (nf * 0.012).max(0.8);
        let v_off = nf * uniform(rng, -0.03, 0.02);
        let vent_w = nf * uniform(rng, 0.022, 0.045);
        let vent_h = nf * uniform(rng, 0.09, 0.15);
        let bow = uniform(rng, 0.2, 0.6);
        let ventricles = [-1.0f32, 1.0].map(|side| {
            let half_w = (vent_w * uniform(rng, 0.9, 1.1)).max(1.0);
            Ventricle {
                side,
                u: side * (septum / 2.0 + half_w),
                v: v_off + uniform(rng, -0.01, 0.01) * nf,
                half_w,
                half_h: (vent_h * uniform(rng, 0.9, 1.1)).max(2.5),
                bow,
            }
        });
        let nuclei = [-1.0f32, 1.0].map(|side| {
            (
                side * (septum / 2.0 + 2.0 * vent_w + nf * uniform(rng, 0.04, 0.06)),
                v_off + nf * uniform(rng, 0.0, 0.04),
                nf * uniform(rng, 0.025, 0.04),
                nf * uniform(rng, 0.05, 0.07),
            )
        });

        let hu_gm = uniform(rng, 34.0, 40.0);
        Head {
            cx,
            cy,
            cos: angle.cos(),
            sin: angle.sin(),
            a,
            b,
            outline: Wobble::new(rng, 0.02, 4),
            skull,
            scalp,
            hu_scalp: uniform(rng, 10.0, 40.0),
            hu_cortex: uniform(rng, 1200.0, 1500.0),
            hu_diploe: uniform(rng, 700.0, 900.0),
            hu_gm,
            hu_wm: (hu_gm - uniform(rng, 6.0, 10.0)).max(25.0),
            hu_csf: uniform(rng, 2.0, 10.0),
            csf_rim: (nf * 0.006).max(0.5) * uniform(rng, 0.8, 1.6),
            gm_thick: (nf * uniform(rng, 0.02, 0.03)).max(1.2),
            sulci,
            ventricles,
            nuclei,
            texture: Noise2::new(rng, n, n, (nf / 10.0).max(2.0)),
        }
    }

    fn geo(&self, x: f32, y: f32) -> Geo {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let u = dx * self.cos + dy * self.sin;
        let v = -dx * self.sin + dy * self.cos;
        let r = u.hypot(v);
        let phi = v.atan2(u);
        let (c, s) = (phi.cos() / self.a, phi.sin() / self.b);
        let outer = (1.0 + self.outline.at(phi)) / (c * c + s * s).sqrt();
        let d = outer - r;
        Geo {
            x,
            y,
            u,
            v,
            r,
            phi,
            d,
            di: d - self.skull,
        }
    }

    /// Image coordinates of head-frame point (u, v).
    fn to_image(&self, u: f32, v: f32) -> (f32, f32) {
        (
            self.cx + u * self.cos - v * self.sin,
            self.cy + u * self.sin + v * self.cos,
        )
    }

    /// Signed distance (px, negative inside) to the extra-axial CSF: the
    /// rim under the skull and the sulci, clefts widened by `widen`.
    fn csf_sd(&self, g: &Geo, widen: f32) -> f32 {
        let mut sd = g.di - self.csf_rim * widen;
        for s in &self.sulci {
            let along = (g.di / s.depth).clamp(0.0, 1.0);
            let arc = angle_diff(g.phi, s.phi + s.bend * along).abs() * g.r;
            let hw = s.half_width * widen * (1.0 - 0.4 * along);
            let d = if g.di <= s.depth {
                arc - hw
            } else {
                arc.hypot(g.di - s.depth) - hw
            };
            sd = sd.min(d);
        }
        sd
    }

    fn ventricle_sd(&self, k: usize, g: &Geo) -> f32 {
        let vt = &self.ventricles[k];
        let dv = g.v - vt.v;
        let t = (dv / vt.half_h).clamp(-1.0, 1.0);
        let centre = vt.u + vt.side * vt.bow * vt.half_w * (1.0 - t * t);
        let half_w = vt.half_w * (1.0 + 0.3 * (-t).max(0.0));
        let q = ((g.u - centre) / half_w).hypot(dv / vt.half_h);
        (q - 1.0) * half_w
    }

    /// Intracranial tissue HU (no blood).
    fn tissue(&self, g: &Geo) -> f32 {
        let s = self.csf_sd(g, 1.0);
        let mut v = mix(
            self.hu_gm,
            self.hu_wm,
            smoothstep(self.gm_thick - 0.75, self.gm_thick + 0.75, s),
        );
        for &(nu, nv, hw, hh) in &self.nuclei {
            let q = ((g.u - nu) / hw).hypot((g.v - nv) / hh);
            v = mix(self.hu_gm, v, smoothstep(0.7, 1.1, q));
        }
        v += 1.5 * self.texture.at(g.x, g.y);
        v = mix(v, self.hu_csf, cover(s));
        for k in 0..2 {
            v = mix(v, self.hu_csf, cover(self.ventricle_sd(k, g)));
        }
        v
    }

    /// Air, scalp, skull and the given intracranial value, with
    /// partial-volume edges.
    fn compose(&self, g: &Geo, brain: f32) -> f32 {
        let t = (2.0 * g.d / self.skull - 1.0).abs().min(1.0);
        let bone = self.hu_diploe + (self.hu_cortex - self.hu_diploe) * t.powf(0.7);
        let mut v = -1000.0;
        v = mix(v, self.hu_scalp, cover(-(g.d + self.scalp)));
        v = mix(v, bone, cover(-g.d));
        mix(v, brain, cover(-g.di))
    }
}

#[derive(Debug, Clone)]
enum Shape {
    /// Biconvex lens against the inner table.
    Epidural { phi: f32, half_arc: f32, thick: f32 },
    /// Crescent along the inner table over a longer arc.
    Subdural { phi: f32, half_arc: f32, thick: f32 },
    /// Irregular blob in the parenchyma (image coordinates).
    Parenchymal {
        x: f32,
        y: f32,
        radius: f32,
        aspect: f32,
        cos: f32,
        sin: f32,
        wobble: Wobble,
    },
    /// Blood in the dependent (posterior) part of a ventricle, below a
    /// horizontal fluid level at image row `level`.
    Ventricular { side: usize, level: f32 },
    /// Blood in the sulci and fissures of a sector, clefts widened.
    Subarachnoid { phi: f32, half_arc: f32, widen: f32 },
}

#[derive(Debug, Clone)]
struct Lesion {
    label: usize,
    shape: Shape,
    hu: f32,
    /// Blood fraction of each pixel's intracranial part.
    cov: Vec<f32>,
    /// The box and mask, if any pixel is covered.
    found: Option<(LesionBox, Vec<bool>)>,
}

impl Shape {
    fn coverage(&self, head: &Head, g: &Geo) -> f32 {
        match self {
            Shape::Epidural {
                phi,
                half_arc,
                thick,
            } => {
                let t = angle_diff(g.phi, *phi).abs() / half_arc;
                let th = thick * (1.0 - t * t).max(0.0).sqrt();
                extra_axial(g.di, th)
            }
            Shape::Subdural {
                phi,
                half_arc,
                thick,
            } => {
                let t = angle_diff(g.phi, *phi).abs() / half_arc;
                let th = thick * (1.0 - t.powi(4)).max(0.0).powf(0.4);
                extra_axial(g.di, th)
            }
            Shape::Parenchymal {
                x,
                y,
                radius,
                aspect,
                cos,
                sin,
                wobble,
            } => {
                let (dx, dy) = (g.x - x, g.y - y);
                let p = dx * cos + dy * sin;
                let q = (-dx * sin + dy * cos) / aspect;
                let rad = radius * (1.0 + wobble.at(q.atan2(p)));
                cover(p.hypot(q) - rad)
            }
            Shape::Ventricular { side, level } => {
                cover(head.ventricle_sd(*side, g)) * cover(level - g.y)
            }
            Shape::Subarachnoid {
                phi,
                half_arc,
                widen,
            } => {
                // A hard sector edge: sulci run radially, so it falls
                // between them rather than leaving faint blood tails.
                if angle_diff(g.phi, *phi).abs() > *half_arc {
                    0.0
                } else {
                    cover(head.csf_sd(g, *widen))
                }
            }
        }
    }
}

/// Blood fraction of the intracranial part of a pixel at depth `di` below
/// the inner table, for a collection `thick` px deep against the table:
/// the pixel spans depths `di +- 0.5`, of which `[0, thick]` is blood.
fn extra_axial(di: f32, thick: f32) -> f32 {
    let blood = ((di + 0.5).min(thick) - (di - 0.5).max(0.0)).max(0.0);
    let intracranial = cover(-di);
    if intracranial <= 0.0 {
        0.0
    } else {
        (blood / intracranial).min(1.0)
    }
}

/// Samples every subtype (whatever is present), each from its own stream,
/// redrawing a lesion that would cover no pixel.
fn sample_lesions(head: &Head, geos: &[Geo], streams: &mut [StdRng]) -> Vec<Lesion> {
    let n = (geos.len() as f32).sqrt().round() as usize;
    let nf = n as f32;
    let finish = |label: usize, shape: Shape, hu: f32| {
        let cov: Vec<f32> = geos.iter().map(|g| shape.coverage(head, g)).collect();
        let effective: Vec<f32> = cov
            .iter()
            .zip(geos)
            .map(|(&c, g)| c * cover(-g.di))
            .collect();
        let found = box_of(&effective, n, 0.25, 0.5, label);
        Lesion {
            label,
            shape,
            hu,
            cov,
            found,
        }
    };
    let retry = |rng: &mut StdRng, draw: &mut dyn FnMut(&mut StdRng) -> Lesion| {
        let mut lesion = draw(rng);
        for _ in 0..10 {
            if lesion.found.is_some() {
                break;
            }
            lesion = draw(rng);
        }
        lesion
    };
    let mut sectors: Vec<(f32, f32)> = Vec::new();
    let free_angle = |rng: &mut StdRng, half: f32, sectors: &[(f32, f32)]| {
        let mut phi = uniform(rng, 0.0, TAU);
        for _ in 0..30 {
            if sectors
                .iter()
                .all(|&(p, h)| angle_diff(phi, p).abs() > h + half + 0.15)
            {
                break;
            }
            phi = uniform(rng, 0.0, TAU);
        }
        phi
    };

    let mut out = Vec::new();
    let edh = retry(&mut streams[0], &mut |rng| {
        let half_arc = uniform(rng, 0.2, 0.42);
        let shape = Shape::Epidural {
            phi: free_angle(rng, half_arc, &sectors),
            half_arc,
            thick: (nf * uniform(rng, 0.04, 0.085)).max(2.2),
        };
        finish(EPIDURAL, shape, uniform(rng, 60.0, 90.0))
    });
    if let Shape::Epidural { phi, half_arc, .. } = edh.shape {
        sectors.push((phi, half_arc));
    }
    out.push(edh);

    let sdh = retry(&mut streams[4], &mut |rng| {
        let half_arc = uniform(rng, 0.55, 1.0);
        let shape = Shape::Subdural {
            phi: free_angle(rng, half_arc, &sectors),
            half_arc,
            thick: (nf * uniform(rng, 0.018, 0.04)).max(1.6),
        };
        finish(SUBDURAL, shape, uniform(rng, 50.0, 80.0))
    });
    if let Shape::Subdural { phi, half_arc, .. } = sdh.shape {
        sectors.push((phi, half_arc));
    }
    out.push(sdh);

    out.push(retry(&mut streams[3], &mut |rng| {
        let half_arc = uniform(rng, 0.35, 0.8);
        let shape = Shape::Subarachnoid {
            phi: free_angle(rng, half_arc, &sectors),
            half_arc,
            widen: uniform(rng, 1.6, 2.2),
        };
        finish(SUBARACHNOID, shape, uniform(rng, 50.0, 75.0))
    }));

    out.push(retry(&mut streams[1], &mut |rng| {
        let shape = parenchymal(head, rng, nf);
        finish(INTRAPARENCHYMAL, shape, uniform(rng, 55.0, 85.0))
    }));

    // One ventricle, or both (then two haemorrhages, two boxes).
    let rng = &mut streams[2];
    let first = rng.gen_range(0..2usize);
    let both = rng.gen_bool(0.3);
    let cast = rng.gen_bool(0.2);
    for side in [first, 1 - first]
        .into_iter()
        .take(if both { 2 } else { 1 })
    {
        out.push(retry(rng, &mut |rng| {
            let vt = &head.ventricles[side];
            let (_, yc) = head.to_image(vt.u, vt.v);
            let reach = vt.half_h * head.cos;
            let level = if cast {
                yc - 1.5 * reach
            } else {
                yc + reach * uniform(rng, -0.2, 0.55)
            };
            let shape = Shape::Ventricular { side, level };
            finish(INTRAVENTRICULAR, shape, uniform(rng, 50.0, 80.0))
        }));
    }
    out
}

/// A parenchymal haematoma placed clear of the cortex and the ventricles:
/// the candidate with the most room out of up to 60 draws.
fn parenchymal(head: &Head, rng: &mut StdRng, nf: f32) -> Shape {
    let radius = (nf * uniform(rng, 0.035, 0.085)).max(2.0);
    let aspect = uniform(rng, 0.65, 1.0);
    let rot = uniform(rng, 0.0, TAU);
    let wobble = Wobble::new(rng, 0.12, 4);
    let cortex = nf * 0.08;
    let mut best = (f32::MIN, head.cx, head.cy);
    for _ in 0..60 {
        let u = uniform(rng, -head.a, head.a);
        let v = uniform(rng, -head.b, head.b);
        let (x, y) = head.to_image(u, v);
        let g = head.geo(x, y);
        let room = (g.di - cortex - radius)
            .min(head.ventricle_sd(0, &g) - radius - 1.0)
            .min(head.ventricle_sd(1, &g) - radius - 1.0);
        if room > best.0 {
            best = (room, x, y);
        }
        if room > 0.0 {
            break;
        }
    }
    Shape::Parenchymal {
        x: best.1,
        y: best.2,
        radius,
        aspect,
        cos: rot.cos(),
        sin: rot.sin(),
        wobble,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::super::draw::test_util::{max_diff_outside, mean_in};
    use super::*;

    fn window(hu: f32) -> f32 {
        (hu / 80.0).clamp(0.0, 1.0)
    }

    #[test]
    fn same_seed_same_slice() {
        for seed in 0..4 {
            let a = head_ct(&mut StdRng::seed_from_u64(seed), 64, 0.6);
            let b = head_ct(&mut StdRng::seed_from_u64(seed), 64, 0.6);
            assert_eq!(a, b);
        }
        let a = head_ct(&mut StdRng::seed_from_u64(1), 64, 0.6);
        let b = head_ct(&mut StdRng::seed_from_u64(2), 64, 0.6);
        assert_ne!(a.hu, b.hu);
    }

    #[test]
    fn labels_boxes_and_mask_agree() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut counts = [0usize; 6];
        let mut two = 0;
        let total = 300;
        for i in 0..total {
            let size = [32, 64, 96, 128][i % 4];
            let s = head_ct(&mut rng, size, 0.6);
            assert_eq!(s.hu.len(), size * size);
            assert_eq!(s.lesion_mask.len(), size * size);
            assert_eq!(
                s.labels[ANY],
                s.labels[1..].iter().any(|&l| l),
                "any is the OR"
            );
            let subtypes = s.labels[1..].iter().filter(|&&l| l).count();
            assert!(subtypes <= 2);
            two += usize::from(subtypes == 2);
            for (k, &on) in s.labels.iter().enumerate() {
                counts[k] += usize::from(on);
                let boxes: Vec<_> = s.boxes.iter().filter(|b| b.label == k).collect();
                assert_eq!(on, !boxes.is_empty(), "label {} box", ICH_LABELS[k]);
                for b in boxes {
                    assert!(b.x0 < b.x1 && b.y0 < b.y1 && b.x1 <= size && b.y1 <= size);
                }
            }
            for (p, &m) in s.lesion_mask.iter().enumerate() {
                if m == 1 {
                    let (x, y) = (p % size, p / size);
                    assert!(s.boxes.iter().any(|b| b.label != ANY && b.contains(x, y)));
                }
            }
            assert_eq!(s.labels[ANY], s.lesion_mask.contains(&1));
        }
        let rate = counts[ANY] as f64 / total as f64;
        assert!((0.5..0.7).contains(&rate), "positive rate {rate}");
        for (k, &c) in counts.iter().enumerate().skip(1) {
            assert!(c >= 20, "{} only {c} times", ICH_LABELS[k]);
        }
        assert!(two > 0, "two subtypes sometimes");
    }

    #[test]
    fn hounsfield_ranges() {
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..20 {
            let mut state = StdRng::seed_from_u64(rng.gen());
            let mut anatomy = substream(&mut state.clone());
            let head = Head::sample(&mut anatomy, 96);
            let s = render(&mut state, 96, [false; 5]);
            let (mut air, mut bone, mut brain) = (vec![], vec![], vec![]);
            for (i, &v) in s.hu.iter().enumerate() {
                let g = head.geo((i % 96) as f32 + 0.5, (i / 96) as f32 + 0.5);
                if g.d < -head.scalp - 1.0 {
                    air.push(v);
                } else if g.d > 0.8 && g.d < head.skull - 0.8 {
                    bone.push(v);
                } else if head.csf_sd(&g, 1.0) > head.gm_thick + 1.0
                    && (0..2).all(|k| head.ventricle_sd(k, &g) > 1.0)
                {
                    brain.push(v);
                }
            }
            let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
            assert!((mean(&air) + 1000.0).abs() < 3.0, "air {}", mean(&air));
            assert!(air.iter().all(|&v| (-1060.0..-940.0).contains(&v)));
            assert!(
                (650.0..1550.0).contains(&mean(&bone)),
                "bone {}",
                mean(&bone)
            );
            assert!(bone.iter().all(|&v| (600.0..1600.0).contains(&v)));
            assert!(
                (24.0..42.0).contains(&mean(&brain)),
                "brain {}",
                mean(&brain)
            );
        }
    }

    /// The haemorrhage is brighter than the brain around it on a brain
    /// window, and it is the only thing that changes.
    #[test]
    fn each_haemorrhage_is_visible_and_local() {
        for seed in 0..40u64 {
            for k in 0..5 {
                let size = [64, 128][seed as usize % 2];
                let mut present = [false; 5];
                present[k] = true;
                let state = StdRng::seed_from_u64(seed);
                let with = render(&mut state.clone(), size, present);
                let without = render(&mut state.clone(), size, [false; 5]);
                let label = k + 1;
                assert!(with.labels[label], "seed {seed} {}", ICH_LABELS[label]);
                let boxes: Vec<_> = with
                    .boxes
                    .iter()
                    .copied()
                    .filter(|b| b.label == label)
                    .collect();
                // Outside the box only faint partial-volume slivers change,
                // by less than the image noise (5-10 HU).
                let outside = max_diff_outside(&with.hu, &without.hu, size, &boxes, 2);
                assert!(
                    outside < 3.0,
                    "seed {seed} {} changes pixels outside its box by {outside} HU",
                    ICH_LABELS[label]
                );

                let win: Vec<f32> = with.hu.iter().map(|&h| window(h)).collect();
                let base: Vec<f32> = without.hu.iter().map(|&h| window(h)).collect();
                for b in &boxes {
                    let lesion = mean_in(&win, size, b, |i| with.lesion_mask[i] == 1);
                    // The same pixels without blood, and their surroundings.
                    let before = mean_in(&base, size, b, |i| with.lesion_mask[i] == 1);
                    let grown = LesionBox {
                        x0: b.x0.saturating_sub(3),
                        y0: b.y0.saturating_sub(3),
                        x1: (b.x1 + 3).min(size),
                        y1: (b.y1 + 3).min(size),
                        ..*b
                    };
                    let around = mean_in(&win, size, &grown, |i| {
                        with.lesion_mask[i] == 0 && (0.15..0.65).contains(&win[i])
                    });
                    assert!(
                        lesion > before + 0.12 && lesion > around + 0.15,
                        "seed {seed} {}: lesion {lesion} before {before} around {around}",
                        ICH_LABELS[label]
                    );
                }
            }
        }
    }

    #[test]
    fn subtypes_have_their_shapes() {
        // Epidural: thicker and shorter than subdural.
        let mut rng = StdRng::seed_from_u64(3);
        let (mut edh_ratio, mut sdh_ratio) = (0.0, 0.0);
        for _ in 0..30 {
            let mut present = [false; 5];
            present[EPIDURAL - 1] = true;
            present[SUBDURAL - 1] = true;
            let s = render(&mut StdRng::seed_from_u64(rng.gen()), 128, present);
            let area = |label: usize| {
                let b = s.boxes.iter().find(|b| b.label == label).copied();
                let b = b.unwrap_or(LesionBox {
                    label,
                    x0: 0,
                    y0: 0,
                    x1: 1,
                    y1: 1,
                });
                let pixels = (b.y0..b.y1)
                    .flat_map(|y| (b.x0..b.x1).map(move |x| y * 128 + x))
                    .filter(|&i| s.lesion_mask[i] == 1)
                    .count() as f32;
                let long = b.width().max(b.height()) as f32;
                // Mean thickness over length: pixels / length^2.
                pixels / (long * long)
            };
            edh_ratio += area(EPIDURAL);
            sdh_ratio += area(SUBDURAL);
        }
        assert!(
            edh_ratio > 1.5 * sdh_ratio,
            "epidural {edh_ratio} subdural {sdh_ratio}"
        );
    }
}
