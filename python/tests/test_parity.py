"""The same configuration, seed and data give the same model file bytes
through Python and through `sparse-ae train`."""

import json
import subprocess

import numpy as np
import pytest

import sparse_ae


def cli_train(cli, data, out, *args):
    subprocess.run(
        [str(cli), "train", "--data", str(data), "--out", str(out), "--quiet", *args],
        check=True,
    )
    return out.read_bytes()


@pytest.mark.parametrize(
    "preset,batch,epochs,seed",
    [("deep", 32, 2, 7), ("denoising", 128, 2, 3), ("sparse-kl", 64, 1, 0)],
)
def test_same_bytes_as_cli_on_idx(tiny, cli, tmp_path, preset, batch, epochs, seed):
    d, (x_train, _), (x_test, _) = tiny
    want = cli_train(
        cli, d, tmp_path / "cli.safetensors",
        "--preset", preset, "--epochs", str(epochs), "--batch-size", str(batch), "--seed", str(seed),
    )
    m = sparse_ae.Autoencoder.preset(preset, seed=seed)
    hist = m.fit(x_train, epochs=epochs, batch_size=batch, validation_data=x_test, verbose=False)
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == want
    assert hist["epoch"] == list(range(1, epochs + 1))
    assert len(hist["val_loss"]) == epochs


def test_same_bytes_as_cli_on_float_npy_with_sgd_and_config(tiny, cli, tmp_path):
    _, (x_train, _), _ = tiny
    # A float32 .npy: the CLI trains on its first 90 %.
    x = (x_train.reshape(len(x_train), -1) / 255.0).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    cfg = sparse_ae.Autoencoder.preset("sparse-l1").config
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    want = cli_train(
        cli, tmp_path / "x.npy", tmp_path / "cli.safetensors",
        "--config", str(tmp_path / "cfg.json"), "--epochs", "2", "--batch-size", "16",
        "--seed", "11", "--optimizer", "sgd", "--lr", "0.05",
    )
    m = sparse_ae.Autoencoder.from_config(cfg, seed=11)
    m.fit(x[: len(x) * 9 // 10], epochs=2, batch_size=16, optimizer="sgd", lr=0.05, verbose=False)
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == want


def test_encode_and_load_match_cli(tiny, cli, tmp_path):
    d, _, (x_test, _) = tiny
    cli_train(cli, d, tmp_path / "m.safetensors", "--preset", "shallow", "--epochs", "1", "--batch-size", "32")
    subprocess.run(
        [str(cli), "encode", "--model", str(tmp_path / "m.safetensors"), "--data", str(d),
         "--out", str(tmp_path / "codes.npy")],
        check=True, capture_output=True,
    )
    m = sparse_ae.Autoencoder.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(m.encode(x_test), np.load(tmp_path / "codes.npy"))
    m.save(tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == (tmp_path / "m.safetensors").read_bytes()


def test_same_bytes_as_cli_on_real_mnist_subset(shared_mnist, cli, tmp_path):
    want = cli_train(
        cli, shared_mnist, tmp_path / "cli.safetensors",
        "--preset", "deep", "--epochs", "1", "--batch-size", "64", "--limit", "2000",
    )
    (x_train, _), (x_test, _) = sparse_ae.datasets.mnist(shared_mnist)
    m = sparse_ae.Autoencoder.preset("deep")
    m.fit(x_train[:2000], epochs=1, batch_size=64, validation_data=x_test[:2000], verbose=False)
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == want


def test_same_bytes_as_cli_on_images_of_another_shape(cli, tmp_path):
    # 6×10 images: the conv preset pools once (both sides even, not both
    # multiples of 4), as the CLI builds it from the IDX header.
    from conftest import write_idx

    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (48, 6, 10), dtype=np.uint8)
    d = tmp_path / "data"
    d.mkdir()
    write_idx(d / "train-images-idx3-ubyte", x[:40])
    write_idx(d / "t10k-images-idx3-ubyte", x[40:])
    want = cli_train(
        cli, d, tmp_path / "cli.safetensors",
        "--preset", "conv", "--epochs", "1", "--batch-size", "8", "--seed", "2",
    )
    m = sparse_ae.Autoencoder.preset("conv", image=(6, 10), seed=2)
    assert m.config["image"] == [1, 6, 10]
    m.fit(x[:40], epochs=1, batch_size=8, verbose=False)
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == want
    # The image's size and an explicit input must agree.
    with pytest.raises(ValueError, match="60"):
        sparse_ae.Autoencoder.preset("conv", 784, image=(6, 10))
    with pytest.raises(ValueError, match="image must be"):
        sparse_ae.Autoencoder.preset("conv", image=(6,))
