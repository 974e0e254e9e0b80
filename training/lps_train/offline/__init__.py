"""Offline data of any origin in one trajectory format (`format`), cut into action chunks at load time
(`chunks`), with converters from LeRobot v3 folders (`lerobot`), OGBench .npz files (`ogbench`) and the
stack's MCAP recordings (`mcap`). docs/datasets.md describes the format."""
