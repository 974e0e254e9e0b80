"""pick_place for learning: demonstrations, the chunk env over the runtime core, evaluation.

Everything here executes action chunks with the runtime's own code, so what is trained and
measured in Python is what the policy node does on the robot or in the ROS sim:

- observations are assembled in the manifest's order with `core.observation.ObservationAssembler`
  (``tcp_position`` is forward kinematics of the arm joints, as on the robot);
- a chunk of joint_position_delta actions becomes absolute targets relative to the arm joints of
  the observation it was inferred from, is interpolated to the command rate by
  `core.chunking.ChunkExecutor` and passes `core.safety.SafetyFilter`, all inside
  `core.controller.SteeringController`;
- `ControllerEnv` (training: the chunk comes from a torch agent) and `evaluate` (the exported ONNX
  models) both drive that controller, stepping the MuJoCo task directly, without ROS.

Modules: `layout` (the models' fixed shapes), `demos` (scripted demonstrations), `dataset` (the
.npz format), `env` (`ControllerEpisode`, `ControllerEnv`), `rollouts` (an exported policy's
episodes as a dataset), `evaluation` (success of exported models).
"""
