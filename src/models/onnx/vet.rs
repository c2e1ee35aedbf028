//! What a file must pass before onnx-ir sees it. onnx-ir trusts the file: it panics on some
//! inconsistent tensors and nodes, and sizes its buffers by the shapes the file declares.
//! Here every tensor's declared size is checked against the bytes that hold it, every node
//! input against the values defined before it, and tensors stored as external data are read
//! (only the vetted range of the vetted file) into the model, so that onnx-ir reads nothing
//! but the checked bytes in memory.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use onnx_ir::{GraphProto, ModelProto, TensorProto};
use protobuf::Message;

/// The lowest default-domain opset the crate runs (the legacy exporter's default since
/// PyTorch 2.0 is 17; 13 is the lowest the exporters write).
pub(super) const MIN_OPSET: i64 = 13;

/// The operators [`super::compile`] runs, by their ONNX names (what onnx-ir turns them into,
/// such as Gemm into a linear layer, included). Any other is refused here, before onnx-ir,
/// which panics on operators it does not know.
pub(super) const OPERATORS: [&str; 44] = [
    "Abs",
    "Add",
    "Attention",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LayerNormalization",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Pow",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// ONNX's `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// A protobuf message holds at most 2 GiB, the limit external data exists for.
const MAX_MODEL_BYTES: u64 = (2 << 30) - 1;

/// Why a file is refused: malformed (`true`) or merely unsupported, the node to blame if
/// one is, and what is wrong.
pub(super) struct Rejection {
    pub malformed: bool,
    pub node: Option<String>,
    pub reason: String,
}

fn malformed<T>(reason: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        malformed: true,
        node: None,
        reason: reason.into(),
    })
}

fn unsupported<T>(reason: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        malformed: false,
        node: None,
        reason: reason.into(),
    })
}

/// The file's bytes, vetted, with external data brought inside: what onnx-ir may parse.
/// `folder` is where external data is looked for (none for bytes given in memory).
pub(super) fn vet(bytes: &[u8], folder: Option<&Path>) -> Result<Vec<u8>, Rejection> {
    let mut model = match ModelProto::parse_from_bytes(bytes) {
        Ok(m) => m,
        Err(e) => return malformed(format!("not an ONNX protobuf: {e}")),
    };
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max();
    match opset {
        None => return malformed("no opset for the default domain"),
        Some(v) if v < MIN_OPSET => {
            return unsupported(format!(
                "opset {v}: export with opset_version >= {MIN_OPSET}"
            ));
        }
        Some(_) => {}
    }
    let Some(graph) = model.graph.as_mut() else {
        return malformed("no graph");
    };
    let mut external = false;
    vet_graph(graph, folder, &mut external)?;
    if !external {
        return Ok(bytes.to_vec());
    }
    // External data now inline: the model re-encoded, within protobuf's 2 GiB.
    let size = model.compute_size();
    if size > MAX_MODEL_BYTES {
        return unsupported(format!(
            "{size} bytes with its external data: more than the 2 GiB one ONNX message holds"
        ));
    }
    model
        .write_to_bytes()
        .or_else(|e| malformed(format!("cannot re-encode the model: {e}")))
}

fn vet_graph(
    graph: &mut GraphProto,
    folder: Option<&Path>,
    external: &mut bool,
) -> Result<(), Rejection> {
    let mut defined: HashSet<String> = graph.input.iter().map(|v| v.name.clone()).collect();
    for tensor in &mut graph.initializer {
        vet_tensor(tensor, folder, external)?;
        defined.insert(tensor.name.clone());
    }
    if !graph.sparse_initializer.is_empty() {
        return unsupported("sparse initializers");
    }
    for node in &mut graph.node {
        let name = || {
            if node.name.is_empty() {
                node.op_type.clone()
            } else {
                node.name.clone()
            }
        };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(Rejection {
                malformed: false,
                node: Some(name()),
                reason: format!("operator {} of domain {}", node.op_type, node.domain),
            });
        }
        if !OPERATORS.contains(&node.op_type.as_str()) {
            return Err(Rejection {
                malformed: false,
                node: Some(name()),
                reason: format!(
                    "operator {} is not supported (models::onnx lists those that are)",
                    node.op_type
                ),
            });
        }
        if let Some(missing) = node
            .input
            .iter()
            .find(|i| !i.is_empty() && !defined.contains(*i))
        {
            return malformed(format!(
                "node {} reads {missing}, which nothing before it defines",
                name()
            ));
        }
        let label = name();
        for attribute in &mut node.attribute {
            if attribute.g.is_some() || !attribute.graphs.is_empty() {
                return unsupported(format!(
                    "node {label}: control flow ({}, a subgraph)",
                    node.op_type
                ));
            }
            if let Some(t) = attribute.t.as_mut() {
                vet_tensor(t, folder, external)?;
            }
            for t in &mut attribute.tensors {
                vet_tensor(t, folder, external)?;
            }
            if attribute.sparse_tensor.is_some() || !attribute.sparse_tensors.is_empty() {
                return unsupported(format!("node {label}: sparse tensors"));
            }
        }
        defined.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
    }
    if let Some(missing) = graph.output.iter().find(|o| !defined.contains(&o.name)) {
        return malformed(format!(
            "the output {} is not computed by the graph",
            missing.name
        ));
    }
    Ok(())
}

/// Bytes per value of ONNX's numeric data types (`TensorProto.DataType`).
fn value_bytes(data_type: i32) -> Option<u64> {
    Some(match data_type {
        2 | 3 | 9 => 1,       // uint8, int8, bool
        4 | 5 | 10 | 16 => 2, // uint16, int16, float16, bfloat16
        1 | 6 | 12 => 4,      // float, int32, uint32
        7 | 11 | 13 => 8,     // int64, double, uint64
        _ => return None,
    })
}

/// A tensor's declared shape against the data that holds it; external data read in.
fn vet_tensor(
    t: &mut TensorProto,
    folder: Option<&Path>,
    external: &mut bool,
) -> Result<(), Rejection> {
    let name = if t.name.is_empty() {
        "a constant"
    } else {
        &t.name
    }
    .to_string();
    let Some(size) = value_bytes(t.data_type) else {
        return unsupported(format!("tensor {name} has data type {}", t.data_type));
    };
    let mut count: u64 = 1;
    for &d in &t.dims {
        let Ok(d) = u64::try_from(d) else {
            return malformed(format!("tensor {name} has a negative dimension ({d})"));
        };
        count = match count.checked_mul(d) {
            Some(c) => c,
            None => return malformed(format!("tensor {name} declares an overflowing shape")),
        };
    }
    let Some(bytes) = count.checked_mul(size) else {
        return malformed(format!("tensor {name} declares an overflowing size"));
    };
    if t.segment.is_some() {
        return unsupported(format!("tensor {name} is a segment"));
    }
    if t.data_location.value() == EXTERNAL {
        *external = true;
        let data = read_external(t, &name, bytes, folder)?;
        t.raw_data = data.into();
        t.external_data.clear();
        t.data_location = protobuf::EnumOrUnknown::from_i32(0);
        return Ok(());
    }
    let typed = [
        t.float_data.len(),
        t.int32_data.len(),
        t.int64_data.len(),
        t.double_data.len(),
        t.uint64_data.len(),
    ];
    let held = if !t.raw_data.is_empty() {
        (t.raw_data.len() as u64 == bytes, t.raw_data.len() as u64)
    } else {
        let n = typed.iter().sum::<usize>() as u64;
        // int32_data holds every type of 4 bytes or less, one value per entry.
        (n == count, n)
    };
    if !held.0 {
        return malformed(format!(
            "tensor {name} declares shape {:?} ({bytes} bytes) but holds {}",
            t.dims,
            if t.raw_data.is_empty() {
                format!("{} values", held.1)
            } else {
                format!("{} bytes", held.1)
            }
        ));
    }
    Ok(())
}

/// The bytes of an external tensor: `location` (a file beside the model, no `..`),
/// `offset` and `length` checked against that file and against the declared size.
fn read_external(
    t: &TensorProto,
    name: &str,
    bytes: u64,
    folder: Option<&Path>,
) -> Result<Vec<u8>, Rejection> {
    let Some(folder) = folder else {
        return unsupported(format!(
            "tensor {name} is stored as external data, which a model given as bytes cannot \
             name: load it from its file"
        ));
    };
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let Some(location) = entry("location") else {
        return malformed(format!("external tensor {name} has no location"));
    };
    let relative = Path::new(&location);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return malformed(format!(
            "external tensor {name} names {location}, outside the model's folder"
        ));
    }
    let number = |key: &str| -> Result<Option<u64>, Rejection> {
        match entry(key) {
            None => Ok(None),
            Some(v) => match v.parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => malformed(format!("external tensor {name} has {key} {v:?}")),
            },
        }
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?.unwrap_or(bytes);
    if length != bytes {
        return malformed(format!(
            "external tensor {name} declares {bytes} bytes and a length of {length}"
        ));
    }
    let path = folder.join(relative);
    let open = |e: std::io::Error| Rejection {
        malformed: true,
        node: None,
        reason: format!("external tensor {name}: {}: {e}", path.display()),
    };
    let mut file = std::fs::File::open(&path).map_err(open)?;
    let available = file.metadata().map_err(open)?.len();
    if offset.checked_add(length).is_none_or(|end| end > available) {
        return malformed(format!(
            "external tensor {name}: {length} bytes at {offset} in {}, which has {available}",
            path.display()
        ));
    }
    file.seek(SeekFrom::Start(offset)).map_err(open)?;
    let mut data = Vec::new();
    // `take`: a file that shrank since is a short read, refused below, not a longer one.
    file.take(length).read_to_end(&mut data).map_err(open)?;
    if data.len() as u64 != length {
        return malformed(format!(
            "external tensor {name}: {} changed while it was read",
            path.display()
        ));
    }
    Ok(data)
}
