# lps-franka: every target sets up what it needs (idempotently) through scripts/bootstrap.sh.
# ORT=gpu selects onnxruntime-gpu instead of onnxruntime (machines with an NVIDIA GPU).
SHELL := /bin/bash
ORT ?= cpu
RUN := scripts/with-env
PYTEST_ARGS ?=

.PHONY: setup demo demo-node test bench lint lock clean models

setup:
	@ORT=$(ORT) scripts/bootstrap.sh

# The main job: frozen base vs LP-DS vs LPS on pick_place through the ROS path (sim bridge +
# policy node in lock-step), nominal and one gap profile; report in runs/demo_eval/. Then base and
# LP-DS with perception in the loop, beside their ground-truth twins: runs/demo_eval_perception/.
demo: setup
	@$(RUN) python -m lps_steering.evaluation --config launch/evaluations/demo.yaml
	@$(RUN) python -m lps_steering.evaluation --config launch/evaluations/demo_perception.yaml

# The policy node's loop statistics against a kinematic fake arm and a tiny model.
demo-node: setup
	@$(RUN) python scripts/demo.py

test: setup
	@$(RUN) python -m pytest tests $(PYTEST_ARGS)

bench: setup
	@$(RUN) python bench/run_all.py

# Rebuild the shipped pick_place models (demonstrations -> decoders -> heads -> evaluation); about
# 4 h on 2 cores. Settings: `lps-train <command> --help`, presets in training/lps_train/configs.py.
models: setup
	@scripts/make_models.sh

# Every Python directory of the tree (ruff.toml), as CI runs it before the tests.
lint: setup
	@$(RUN) ruff check .

# Re-pin requirements/lock.txt from requirements/base.in (needs the registries).
lock:
	@scripts/lock.sh

clean:
	rm -rf .venv ros2_ws/build ros2_ws/install ros2_ws/log ros2_ws/.stamp-build .ros
