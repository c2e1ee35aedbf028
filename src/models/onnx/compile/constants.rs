//! Constants of the file on the host: read, checked, and put on the device.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use onnx_ir::{Argument, TensorDataExt};

use super::{Refusal, refuse};

/// Host values of a floating-point constant: row-major data and its shape.
#[derive(Clone, Debug)]
pub(super) struct HostTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

pub(super) fn ints(node: &str, data: &TensorData) -> Result<Vec<i64>, Refusal> {
    data.to_i64_vec()
        .or_else(|e| refuse(node, format!("integer constant unreadable: {e:?}")))
}

pub(super) fn host(node: &str, what: &str, data: TensorData) -> Result<HostTensor, Refusal> {
    let dims = data.shape.to_vec();
    let data = match data.dtype {
        DType::F32 => data.to_vec::<f32>(),
        DType::F64 | DType::F16 | DType::BF16 => data.convert::<f32>().to_vec::<f32>(),
        other => return refuse(node, format!("{what} is {other:?}; floats are supported")),
    }
    .or_else(|e| refuse(node, format!("{what} unreadable: {e:?}")))?;
    if data.len() != dims.iter().product::<usize>() {
        return refuse(
            node,
            format!("{what}: {} values for shape {dims:?}", data.len()),
        );
    }
    if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
        return refuse(node, format!("{what} holds a non-finite value ({bad})"));
    }
    Ok(HostTensor { dims, data })
}

pub(super) fn static_host(
    node: &str,
    arg: Option<&Argument>,
    what: &str,
) -> Result<HostTensor, Refusal> {
    let Some(data) = arg.and_then(Argument::value) else {
        return refuse(node, format!("its {what} is not a constant of the file"));
    };
    host(node, what, data)
}

pub(super) fn dims2(node: &str, t: &HostTensor) -> Result<[usize; 2], Refusal> {
    match t.dims[..] {
        [a, b] => Ok([a, b]),
        _ => refuse(
            node,
            format!("a weight of shape {:?}, not a matrix", t.dims),
        ),
    }
}

pub(super) fn transpose2(data: &[f32], rows: usize, cols: usize) -> HostTensor {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    HostTensor {
        dims: vec![cols, rows],
        data: out,
    }
}

pub(super) fn tensor2<B: Backend>(t: &HostTensor, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(t.data.clone(), t.dims.clone()), device)
}

pub(super) fn float_on<B: Backend>(
    data: Vec<f32>,
    dims: &[usize],
    device: &B::Device,
) -> burn::tensor::ops::FloatTensor<B> {
    B::float_from_data(TensorData::new(data, dims.to_vec()), device)
}

/// A bias or other vector parameter on the device.
pub(super) fn vector_param<B: Backend>(
    values: Vec<f32>,
    device: &B::Device,
) -> burn::module::Param<Tensor<B, 1>> {
    let n = values.len();
    burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(values, [n]), device))
}
