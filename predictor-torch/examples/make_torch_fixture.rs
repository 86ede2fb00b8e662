//! Writes the TorchScript test and example model, in a Triton model repository layout:
//!
//! ```text
//! DIR/mlp-torch/config.pbtxt      platform pytorch_libtorch, max_batch_size 64, dims [784] -> [10]
//! DIR/mlp-torch/1/model.pt        the same 784 -> 512 -> 512 -> 10 MLP as scripts/make_fixtures.py
//! ```
//!
//! Run: `cargo run -p kiln-predictor-torch --example make_torch_fixture -- DIR`

use tch::{Kind, Tensor};

const LAYERS: [(i64, i64); 3] = [(784, 512), (512, 512), (512, 10)];

fn weight(layer: i64, n_in: i64, n_out: i64) -> Tensor {
    let values: Vec<f32> = (0..n_in)
        .flat_map(|i| {
            (0..n_out).map(move |j| ((i * 31 + j * 17 + layer * 7) % 97 - 48) as f32 / 970.0)
        })
        .collect();
    Tensor::from_slice(&values).reshape([n_in, n_out])
}

fn bias(layer: i64, n_out: i64) -> Tensor {
    let values: Vec<f32> = (0..n_out)
        .map(|j| ((j * 13 + layer) % 11 - 5) as f32 / 100.0)
        .collect();
    Tensor::from_slice(&values)
}

fn main() -> anyhow::Result<()> {
    let dir =
        std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fixtures".into()));
    let model_dir = dir.join("mlp-torch");
    std::fs::create_dir_all(model_dir.join("1"))?;
    let params: Vec<(Tensor, Tensor)> = LAYERS
        .iter()
        .enumerate()
        .map(|(l, &(n_in, n_out))| (weight(l as i64 + 1, n_in, n_out), bias(l as i64 + 1, n_out)))
        .collect();
    let example = Tensor::zeros([2, 784], (Kind::Float, tch::Device::Cpu));
    let module = tch::CModule::create_by_tracing("MLP", "forward", &[example], &mut |inputs| {
        let mut x = inputs[0].shallow_clone();
        for (n, (w, b)) in params.iter().enumerate() {
            x = x.matmul(w) + b;
            if n + 1 < params.len() {
                x = x.relu();
            }
        }
        vec![x]
    })?;
    module.save(model_dir.join("1").join("model.pt"))?;
    std::fs::write(
        model_dir.join("config.pbtxt"),
        r#"name: "mlp-torch"
platform: "pytorch_libtorch"
max_batch_size: 64
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 784 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ] } ]
"#,
    )?;
    eprintln!("wrote {}", model_dir.display());
    Ok(())
}
