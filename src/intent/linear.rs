//! The discriminative half of the classifier: a multinomial logistic regression over the
//! message's tokens (CJK unigrams and bigrams, ASCII words), trained from the library's sample
//! questions and titles (and its out-of-scope samples, as their own class) each time the
//! classifier is built.
//!
//! Retrieval compares a message with the nearest sample questions, so a long or wordy message
//! that no sample resembles scores low even when one phrase in it says what it wants. The
//! linear model adds up evidence word by word instead: words every intent uses learn weights
//! near zero, and the one phrase that separates the intents decides. Measured on messages
//! nobody tuned for, it is the larger half of the gain (see BENCHMARKS.md).
//!
//! Features are binary, scaled by `1/sqrt(n)` for a message of `n` distinct tokens, so a
//! long message is not more confident for being long. Training is AdaGrad SGD over a fixed
//! pseudo-random order with L2 regularisation: deterministic, six passes, tens of
//! milliseconds for a few thousand samples.

/// Inverse regularisation strength (as `C` in the usual formulation: larger fits closer).
const C: f32 = 30.0;
/// Passes over the training samples.
const EPOCHS: usize = 6;
/// A class whose gradient for a sample is smaller than this is not updated for it: after the
/// first pass most classes' probabilities are near zero, and skipping them cuts the updates
/// about fivefold with no measurable change in accuracy (dev and the blind sets).
const MIN_GRADIENT: f32 = 0.01;
/// AdaGrad base learning rate.
const LEARNING_RATE: f32 = 1.0;

/// One training sample: its token ids (sorted, unique), the number of distinct tokens it has
/// (known or not), and its class.
pub(super) struct Sample {
    pub(super) ids: Vec<u32>,
    pub(super) distinct: usize,
    pub(super) class: u16,
}

pub(super) struct Linear {
    classes: usize,
    /// Row-major: token id × class.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    /// Train on `samples` for `classes` classes over a vocabulary of `vocab` token ids.
    pub(super) fn train(samples: &[Sample], classes: usize, vocab: usize) -> Linear {
        let mut model = Linear {
            classes,
            weights: vec![0.0; vocab * classes],
            bias: vec![0.0; classes],
        };
        if classes == 0 || samples.is_empty() {
            return model;
        }
        let mut g2 = vec![1.0f32; vocab * classes];
        let mut g2_bias = vec![1.0f32; classes];
        let lambda = 1.0 / (C * samples.len() as f32);
        let mut order: Vec<usize> = (0..samples.len()).collect();
        let mut rng = SplitMix(0x6b65_6675);
        let mut p = vec![0f32; classes];
        let mut active: Vec<usize> = Vec::with_capacity(classes);
        for _ in 0..EPOCHS {
            // Fisher-Yates with a fixed seed: the same library always trains the same model.
            for i in (1..order.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for &si in &order {
                let s = &samples[si];
                if s.ids.is_empty() {
                    continue;
                }
                let v = scale(s.distinct);
                model.logits_into(&s.ids, v, &mut p);
                softmax(&mut p);
                p[s.class as usize] -= 1.0;
                active.clear();
                active.extend((0..classes).filter(|k| p[*k].abs() >= MIN_GRADIENT));
                for &id in &s.ids {
                    let row = id as usize * classes;
                    let w = &mut model.weights[row..row + classes];
                    let g = &mut g2[row..row + classes];
                    for &k in &active {
                        let grad = p[k] * v + lambda * w[k];
                        g[k] += grad * grad;
                        w[k] -= LEARNING_RATE * grad / g[k].sqrt();
                    }
                }
                for k in 0..classes {
                    g2_bias[k] += p[k] * p[k];
                    model.bias[k] -= LEARNING_RATE * p[k] / g2_bias[k].sqrt();
                }
            }
        }
        model
    }

    /// Class probabilities for a message of `distinct` distinct tokens, of which `ids` (sorted,
    /// unique) are in the vocabulary.
    pub(super) fn probabilities(&self, ids: &[u32], distinct: usize) -> Vec<f32> {
        let mut p = vec![0f32; self.classes];
        self.logits_into(ids, scale(distinct), &mut p);
        softmax(&mut p);
        p
    }

    fn logits_into(&self, ids: &[u32], v: f32, out: &mut [f32]) {
        out.fill(0.0);
        for &id in ids {
            let row = id as usize * self.classes;
            if let Some(w) = self.weights.get(row..row + self.classes) {
                for (o, w) in out.iter_mut().zip(w) {
                    *o += w;
                }
            }
        }
        for (o, b) in out.iter_mut().zip(&self.bias) {
            *o = *o * v + b;
        }
    }
}

fn scale(distinct: usize) -> f32 {
    if distinct == 0 {
        0.0
    } else {
        1.0 / (distinct as f32).sqrt()
    }
}

fn softmax(z: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in z.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        for x in z.iter_mut() {
            *x /= sum;
        }
    }
}

/// A small deterministic generator for the training order.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::{Linear, Sample};

    #[test]
    fn learns_the_separating_token_and_ignores_the_shared_one() {
        // token 0 is in every sample, token 1 only in class 0, token 2 only in class 1
        let samples: Vec<Sample> = (0..20)
            .map(|i| Sample {
                ids: vec![0, 1 + (i % 2)],
                distinct: 2,
                class: (i % 2) as u16,
            })
            .collect();
        let m = Linear::train(&samples, 2, 3);
        let p = m.probabilities(&[0, 2], 2);
        assert!(p[1] > 0.8, "{p:?}");
        let shared = m.probabilities(&[0], 1);
        assert!((shared[0] - 0.5).abs() < 0.1, "{shared:?}");
        // a long message with the deciding token still decides, less surely
        let long = m.probabilities(&[0, 1], 12);
        assert!(long[0] > 0.5 && long[0] < p[1], "{long:?}");
    }

    #[test]
    fn same_samples_same_model() {
        let samples: Vec<Sample> = (0..30)
            .map(|i| Sample {
                ids: vec![i % 5, 5 + i % 3],
                distinct: 2,
                class: (i % 3) as u16,
            })
            .collect();
        let a = Linear::train(&samples, 3, 8);
        let b = Linear::train(&samples, 3, 8);
        assert_eq!(a.weights, b.weights);
    }
}
