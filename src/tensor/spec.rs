//! What a model's inputs take, and the check of a request against them at
//! submit: one piece of code for every backend that runs a tensor model
//! (OpenVINO reads the specs from the compiled model, a remote group from
//! the server's model metadata).

#![forbid(unsafe_code)]

use std::fmt;

use super::{element_count, ElementType, Tensor};
use crate::core::InputError;

/// One model input as a request must give it: its name, the element type
/// of the data and each dimension (`None` for a dynamic one).
pub(crate) trait InputShape {
    fn name(&self) -> &str;
    fn element(&self) -> ElementType;
    fn dims(&self) -> &[Option<usize>];

    /// `f32 [1,3,?,?]`.
    fn describe(&self) -> String {
        format!("{} {}", self.element().name(), ShapeText(self.dims()))
    }

    /// Checks a tensor against this input: element type, shape, a shape
    /// holding at most `max_elements`, and as many data elements as the
    /// shape holds. Nothing is allocated, whatever the shape.
    fn check(&self, t: &Tensor, max_elements: usize) -> Result<(), InputError> {
        let given = || format!("{} {:?}", t.data.element_name(), t.shape);
        if t.data.element() != self.element() {
            return Err(InputError::new(self.name(), self.describe(), given()));
        }
        // A model with a fixed batch of more than one also takes a single
        // row there: it runs in a padded batch.
        let dims = self.dims();
        let fits = t.shape.len() == dims.len()
            && dims
                .iter()
                .zip(&t.shape)
                .enumerate()
                .all(|(i, (d, &g))| match d {
                    None => g > 0,
                    Some(b) if i == 0 && *b > 1 => g == 1 || g == *b,
                    Some(d) => *d == g,
                });
        if !fits {
            return Err(InputError::new(self.name(), self.describe(), given()));
        }
        let Some(n) = element_count(&t.shape, max_elements) else {
            return Err(InputError::new(
                self.name(),
                format!("a shape of at most {max_elements} elements (`max_tensor_elements`)"),
                format!("shape {:?}", t.shape),
            ));
        };
        if n != t.data.len() {
            return Err(InputError::new(
                self.name(),
                format!("{n} elements for shape {:?}", t.shape),
                format!("{} elements", t.data.len()),
            ));
        }
        Ok(())
    }
}

/// Checks a request's tensors against a model's inputs: each input is
/// given (by name, or as the only tensor of a one-input model) and fits its
/// spec, and no tensor names an input the model does not have.
pub(crate) fn validate<S: InputShape>(
    specs: &[S],
    input: &[Tensor],
    max_elements: usize,
) -> Result<(), InputError> {
    for spec in specs {
        let t = find_input(input, spec, specs.len()).ok_or_else(|| {
            InputError::new(
                spec.name(),
                format!("a tensor named `{}` ({})", spec.name(), spec.describe()),
                format!(
                    "tensors {:?}",
                    input.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()
                ),
            )
        })?;
        spec.check(t, max_elements)?;
    }
    if input.len() > specs.len() {
        let known: Vec<_> = specs.iter().map(|s| s.name()).collect();
        let extra = input
            .iter()
            .find(|t| !known.contains(&t.name.as_str()))
            .map_or("?", |t| t.name.as_str());
        return Err(InputError::new(
            extra,
            format!("one of the model's inputs {known:?}"),
            "an unknown tensor",
        ));
    }
    Ok(())
}

/// The tensor for a model input: by name, or the only tensor of a
/// single-input model whatever its name.
pub(crate) fn find_input<'a, S: InputShape>(
    input: &'a [Tensor],
    spec: &S,
    n_inputs: usize,
) -> Option<&'a Tensor> {
    input
        .iter()
        .find(|t| t.name == spec.name())
        .or_else(|| (n_inputs == 1 && input.len() == 1).then(|| &input[0]))
}

/// Dimensions as `[1,3,?,?]`.
pub(crate) struct ShapeText<'a>(pub(crate) &'a [Option<usize>]);

impl fmt::Display for ShapeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match d {
                Some(n) => write!(f, "{n}")?,
                None => f.write_str("?")?,
            }
        }
        f.write_str("]")
    }
}
