"""`lps-train` end to end on the four-mode toy with tiny budgets: files appear and load back."""

import json

import numpy as np
import onnxruntime as ort
import torch
from lps_train.checkpoints import load_decoder
from lps_train.cli import main


def test_cli_collect_train_base_train_head_export(tmp_path):
    d, dec, head = tmp_path / "d.npz", tmp_path / "dec.pt", tmp_path / "lpds.pt"
    assert main(["collect", "--env", "four_modes:unequal", "--episodes", "20", "--out", str(d)]) == 0
    data = np.load(d)
    assert data["actions"].shape[1:] == (8, 2) and len(data["obs"]) == len(data["rewards"])
    main(["train-base", "--demos", str(d), "--meanflow.steps", "30", "--meanflow.hidden", "32", "--meanflow.layers", "2",
          "--out", str(dec)])
    main(["train-head", "--algo", "lpds", "--decoder", str(dec), "--env", "four_modes:unequal", "--lpds.total-steps",
          "1050", "--lpds.delta", "0.2", "--out", str(head)])
    assert (tmp_path / "lpds.png").exists() and (tmp_path / "lpds.csv").exists()
    run = json.loads((tmp_path / "lpds.config.json").read_text())
    assert run["config"]["lpds"]["delta"] == 0.2 and run["config"]["lpds"]["total_steps"] == 1050
    assert run["command"].startswith("lps-train train-head --algo lpds")
    main(["export", "--checkpoint", str(head), "--out", str(tmp_path / "lpds.onnx")])
    sess = ort.InferenceSession(str(tmp_path / "lpds.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["delta"]
    obs = np.zeros((3, 2), np.float32)
    ckpt = torch.load(head, weights_only=False)
    with torch.no_grad():
        ref = ckpt["head"](torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(sess.run(None, {"observation": obs})[0], ref, atol=1e-5)
    loaded, norm, _ = load_decoder(dec)
    assert loaded.latent_dim == 16 and norm.obs_mean.shape == (2,)
