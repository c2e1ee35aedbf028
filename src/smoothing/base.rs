//! Base classifiers: the models that randomized smoothing wraps.
//!
//! A [`BaseClassifier`] takes a batch of inputs in the model's own layout (rank `D`: the
//! batch dimension, then the input's shape) and answers one class index per input, all on
//! the device of its backend (an associated type, so the smoothed classifier needs no
//! parameter of its own for it). [`LogitsClassifier`] makes any function from an input
//! batch to logits, such as a Burn module's `forward`, a base classifier;
//! [`LinearClassifier`] is the two-class linear model whose smoothed version the paper
//! analyses in closed form (Propositions 3 to 5), used to test the certification exactly.

use std::marker::PhantomData;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Error, Result, check_positive};
use crate::stats::special::normal_cdf;

/// A classifier `f` that randomized smoothing turns into `g(x) = argmax_c P(f(x + e) = c)`.
///
/// # Contract
/// - [`input_shape`](Self::input_shape) is the shape of one input, without batch dimension;
///   it has `D - 1` dimensions.
/// - [`classify`](Self::classify) receives `[batch, input_shape...]` (rank `D`) on the device
///   where the noise was drawn, and returns `[batch]` class indices in `0..num_classes()` on
///   the same device. It must not move data to the host: it is called once per batch in the
///   sampling loop.
/// - It is deterministic given its input or, if random, independent of the noise.
///
/// The rank `D` is a parameter of the trait rather than an associated constant because stable
/// Rust cannot yet use an associated constant as a tensor's rank; a classifier implements the
/// trait for one rank, so callers never name it.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::{BaseClassifier, LinearClassifier};
///
/// let device = Default::default();
/// let f = LinearClassifier::<NdArray>::new(&[1.0, -1.0], 0.0, &device)?;
/// assert_eq!(f.input_shape(), &[2]);
/// assert_eq!(f.num_classes(), 2);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub trait BaseClassifier<const D: usize> {
    /// The Burn backend whose tensors the classifier takes and answers.
    type Backend: Backend;

    /// Shape of one input (no batch dimension), e.g. `[3, 32, 32]`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::{BaseClassifier, LinearClassifier};
    ///
    /// let f = LinearClassifier::<NdArray>::new(&[1.0, 2.0, 3.0], 0.0, &Default::default())?;
    /// assert_eq!(f.input_shape(), &[3]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn input_shape(&self) -> &[usize];

    /// Number of classes; decisions are indices in `0..num_classes()`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{BaseClassifier, LogitsClassifier};
    ///
    /// let f = LogitsClassifier::new([4], 4, |x: Tensor<NdArray, 2>| x)?;
    /// assert_eq!(f.num_classes(), 4);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn num_classes(&self) -> usize;

    /// Classifies a batch `[batch, input_shape...]`, returning `[batch]` class indices.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::{BaseClassifier, LinearClassifier};
    ///
    /// let device = Default::default();
    /// let f = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &device)?;
    /// let classes = f.classify(Tensor::from_floats([[-1.0], [2.0]], &device));
    /// assert_eq!(classes.into_data().to_vec::<i64>().unwrap(), vec![0, 1]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    fn classify(&self, inputs: Tensor<Self::Backend, D>) -> Tensor<Self::Backend, 1, Int>;
}

/// A shared or boxed base classifier is one too: a model can be certified through a borrow
/// (`SmoothedClassifier::new(&model, noise)`, keeping the model), an [`Arc`](std::sync::Arc)
/// shared with other threads, or a `Box<dyn BaseClassifier<D, Backend = B>>` chosen at run
/// time among models of different types.
///
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::{BaseClassifier, Gaussian, LinearClassifier, SmoothedClassifier};
///
/// type B = NdArray;
/// let device = Default::default();
/// let linear = LinearClassifier::<B>::new(&[1.0, -1.0], 0.0, &device)?;
/// let chosen: Box<dyn BaseClassifier<2, Backend = B>> = Box::new(linear.clone());
/// let x = burn::tensor::Tensor::<B, 1>::from_floats([0.3, 0.1], &device);
/// let counts = |c: &dyn BaseClassifier<2, Backend = B>| {
///     SmoothedClassifier::new(c, Gaussian::new(0.5).unwrap())
///         .sample_counts(x.clone(), 1_000, 100, 0)
///         .unwrap()
/// };
/// let shared = std::sync::Arc::new(linear.clone());
/// // The model itself, and the box and the Arc as base classifiers of their own.
/// assert_eq!(counts(&linear), counts(&chosen));
/// assert_eq!(counts(&linear), counts(&shared));
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
impl<C: BaseClassifier<D> + ?Sized, const D: usize> BaseClassifier<D> for &C {
    type Backend = C::Backend;

    fn input_shape(&self) -> &[usize] {
        (**self).input_shape()
    }

    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }

    fn classify(&self, inputs: Tensor<Self::Backend, D>) -> Tensor<Self::Backend, 1, Int> {
        (**self).classify(inputs)
    }
}

/// As for `&C`.
impl<C: BaseClassifier<D> + ?Sized, const D: usize> BaseClassifier<D> for Box<C> {
    type Backend = C::Backend;

    fn input_shape(&self) -> &[usize] {
        (**self).input_shape()
    }

    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }

    fn classify(&self, inputs: Tensor<Self::Backend, D>) -> Tensor<Self::Backend, 1, Int> {
        (**self).classify(inputs)
    }
}

/// As for `&C`.
impl<C: BaseClassifier<D> + ?Sized, const D: usize> BaseClassifier<D> for std::sync::Arc<C> {
    type Backend = C::Backend;

    fn input_shape(&self) -> &[usize] {
        (**self).input_shape()
    }

    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }

    fn classify(&self, inputs: Tensor<Self::Backend, D>) -> Tensor<Self::Backend, 1, Int> {
        (**self).classify(inputs)
    }
}

/// Any function from a batch of inputs of rank `D` to logits `[batch, num_classes]`, as a
/// base classifier that answers the arg-max class.
///
/// This is the one adapter for Burn models: pass a closure that calls the model's `forward`.
/// Randomized smoothing adds noise in the space the function receives, so for image models
/// the function should take pixels in [0, 1] and normalize itself (normalization as the
/// model's first layer, as in the paper), making radii pixel-space distances.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::Tensor;
/// use randomized_smoothing::{BaseClassifier, LogitsClassifier};
///
/// let device = Default::default();
/// let model: Linear<NdArray> = LinearConfig::new(4, 3).init(&device);
/// // A 2x2 "image" flattened by the model itself.
/// let f = LogitsClassifier::new([2, 2], 3, move |x: Tensor<NdArray, 3>| {
///     model.forward(x.flatten::<2>(1, 2))
/// })?;
/// let classes = f.classify(Tensor::zeros([5, 2, 2], &device));
/// assert_eq!(classes.dims(), [5]);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub struct LogitsClassifier<B, F, const D: usize> {
    forward: F,
    input_shape: Vec<usize>,
    num_classes: usize,
    backend: PhantomData<fn() -> B>,
}

// By hand: a derive would ask `B: Clone`.
impl<B, F: Clone, const D: usize> Clone for LogitsClassifier<B, F, D> {
    fn clone(&self) -> Self {
        Self {
            forward: self.forward.clone(),
            input_shape: self.input_shape.clone(),
            num_classes: self.num_classes,
            backend: PhantomData,
        }
    }
}

impl<B, F, const D: usize> std::fmt::Debug for LogitsClassifier<B, F, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogitsClassifier")
            .field("input_shape", &self.input_shape)
            .field("num_classes", &self.num_classes)
            .finish_non_exhaustive()
    }
}

impl<B, F, const D: usize> LogitsClassifier<B, F, D>
where
    B: Backend,
    F: Fn(Tensor<B, D>) -> Tensor<B, 2>,
{
    /// Wraps `forward`, which maps `[batch, input_shape...]` (rank `D`) to logits.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `input_shape` does not have `D - 1` non-zero
    /// dimensions; [`Error::ZeroCount`] if `num_classes` is 0.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::LogitsClassifier;
    ///
    /// // A rank-4 batch needs a 3-dimensional input shape.
    /// let bad = LogitsClassifier::new([32, 32], 10, |x: Tensor<NdArray, 4>| x.flatten::<2>(1, 3));
    /// assert!(bad.is_err());
    /// ```
    pub fn new(input_shape: impl Into<Vec<usize>>, num_classes: usize, forward: F) -> Result<Self> {
        let input_shape = input_shape.into();
        if input_shape.len() + 1 != D || input_shape.contains(&0) {
            return Err(Error::InvalidParameter {
                name: "input_shape",
                reason: format!(
                    "{input_shape:?} must have {} non-zero dimensions for a rank-{D} batch",
                    D.saturating_sub(1)
                ),
            });
        }
        check_positive("num_classes", num_classes as u64)?;
        Ok(Self {
            forward,
            input_shape,
            num_classes,
            backend: PhantomData,
        })
    }
}

impl<B, F, const D: usize> BaseClassifier<D> for LogitsClassifier<B, F, D>
where
    B: Backend,
    F: Fn(Tensor<B, D>) -> Tensor<B, 2>,
{
    type Backend = B;

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn classify(&self, inputs: Tensor<B, D>) -> Tensor<B, 1, Int> {
        top_class((self.forward)(inputs))
    }
}

/// The arg-max class of each row of `[batch, classes]` logits, as `[batch]`.
pub(crate) fn top_class<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1, Int> {
    let batch = logits.dims()[0];
    logits.argmax(1).reshape([batch])
}

/// The two-class linear classifier `f(x) = 1 if w.x + b > 0 else 0` on inputs of shape `[d]`.
///
/// Its smoothed version is known in closed form: under `N(0, sigma^2 I)` noise the class of
/// `x` has probability `Phi(|w.x + b| / (sigma ||w||))`, so `g = f` (Proposition 3) and the
/// certified radius with exact probabilities is the distance to the decision boundary
/// (Proposition 4). The crate's property tests check the certification against this.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use randomized_smoothing::LinearClassifier;
///
/// let f = LinearClassifier::<NdArray>::new(&[3.0, 4.0], -5.0, &Default::default())?;
/// assert_eq!(f.signed_distance(&[3.0, 4.0])?, 4.0); // (9 + 16 - 5) / 5
/// assert_eq!(f.decide(&[0.0, 0.0])?, 0);
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LinearClassifier<B: Backend> {
    weights: Vec<f64>,
    bias: f64,
    norm: f64,
    shape: [usize; 1],
    weights_device: Tensor<B, 2>,
}

impl<B: Backend> LinearClassifier<B> {
    /// A linear classifier with weights `w` (not all zero) and bias `b`, placed on `device`.
    ///
    /// # Errors
    /// [`Error::ZeroCount`] for empty weights, [`Error::InvalidParameter`] for non-finite
    /// values or all-zero weights.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::LinearClassifier;
    ///
    /// assert!(LinearClassifier::<NdArray>::new(&[0.0, 0.0], 1.0, &Default::default()).is_err());
    /// ```
    pub fn new(weights: &[f64], bias: f64, device: &B::Device) -> Result<Self> {
        check_positive("weights", weights.len() as u64)?;
        if !bias.is_finite() || weights.iter().any(|w| !w.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "weights",
                reason: "weights and bias must be finite".into(),
            });
        }
        let norm = weights.iter().map(|w| w * w).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(Error::InvalidParameter {
                name: "weights",
                reason: "at least one weight must be non-zero".into(),
            });
        }
        let data = TensorData::new(
            weights.iter().map(|&w| w as f32).collect(),
            [weights.len(), 1],
        );
        Ok(Self {
            weights: weights.to_vec(),
            bias,
            norm,
            shape: [weights.len()],
            weights_device: Tensor::from_data(data, device),
        })
    }

    fn check_len(&self, x: &[f64]) -> Result<()> {
        if x.len() == self.weights.len() {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                expected: self.shape.to_vec(),
                got: vec![x.len()],
            })
        }
    }

    /// `(w.x + b) / ||w||`: the signed l2 distance from `x` to the decision boundary.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::LinearClassifier;
    ///
    /// let f = LinearClassifier::<NdArray>::new(&[2.0], 1.0, &Default::default())?;
    /// assert_eq!(f.signed_distance(&[-1.0])?, -0.5);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn signed_distance(&self, x: &[f64]) -> Result<f64> {
        self.check_len(x)?;
        let dot: f64 = self.weights.iter().zip(x).map(|(w, v)| w * v).sum();
        Ok((dot + self.bias) / self.norm)
    }

    /// The base classifier's decision at `x`, computed on the host in `f64`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::LinearClassifier;
    ///
    /// let f = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &Default::default())?;
    /// assert_eq!(f.decide(&[0.5])?, 1);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn decide(&self, x: &[f64]) -> Result<usize> {
        Ok(usize::from(self.signed_distance(x)? > 0.0))
    }

    /// Exact probabilities `[P(f(x + e) = 0), P(f(x + e) = 1)]` for `e ~ N(0, sigma^2 I)`.
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use randomized_smoothing::LinearClassifier;
    ///
    /// let f = LinearClassifier::<NdArray>::new(&[1.0], 0.0, &Default::default())?;
    /// let [p0, p1] = f.class_probabilities(&[0.0], 1.0)?;
    /// assert_eq!((p0, p1), (0.5, 0.5));
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn class_probabilities(&self, x: &[f64], sigma: f64) -> Result<[f64; 2]> {
        crate::error::check_sigma(sigma)?;
        let z = self.signed_distance(x)? / sigma;
        // P(w.(x + e) + b > 0) = P(N(0, 1) > -z) = Phi(z).
        Ok([normal_cdf(-z), normal_cdf(z)])
    }

    /// The weights `w`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The bias `b`.
    pub fn bias(&self) -> f64 {
        self.bias
    }
}

impl<B: Backend> LinearClassifier<B> {
    /// Logits `[0, w.x + b]` for a batch of inputs `[batch, d]`: their arg-max is the class
    /// the classifier answers. Differentiable, for the gradient attacks of [`crate::attack`].
    ///
    /// # Example
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::Tensor;
    /// use randomized_smoothing::LinearClassifier;
    ///
    /// let device = Default::default();
    /// let f = LinearClassifier::<NdArray>::new(&[3.0, 4.0], -5.0, &device)?;
    /// let logits = f.logits(Tensor::from_floats([[3.0, 4.0]], &device));
    /// assert_eq!(logits.into_data().to_vec::<f32>().unwrap(), vec![0.0, 20.0]);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn logits(&self, inputs: Tensor<B, 2>) -> Tensor<B, 2> {
        let scores = inputs
            .matmul(self.weights_device.clone())
            .add_scalar(self.bias);
        Tensor::cat(vec![scores.zeros_like(), scores], 1)
    }
}

impl<B: Backend> BaseClassifier<2> for LinearClassifier<B> {
    type Backend = B;

    fn input_shape(&self) -> &[usize] {
        &self.shape
    }

    fn num_classes(&self) -> usize {
        2
    }

    fn classify(&self, inputs: Tensor<B, 2>) -> Tensor<B, 1, Int> {
        let batch = inputs.dims()[0];
        let scores = inputs
            .matmul(self.weights_device.clone())
            .add_scalar(self.bias);
        scores.greater_elem(0.0).int().reshape([batch])
    }
}
