/**
 * @module providers/nvidia/descriptor
 *
 * Device provider `nvidia`: NVIDIA Hopper/Blackwell GPU evidence attached to an attest request
 * as `devices: [{kind: 'nvidia-gpu', evidence}]`, verified against the request's binding into
 * `claims.gpus` (docs/nvidia.md). Needs both NVIDIA roots: the Device Identity CA (GPU chains)
 * and the CoRIM signing root (RIM signers).
 */
import { PinIds } from '../common/pins.js';
import type { DeviceDescriptor } from '../descriptor.js';
import { nvidiaDeviceVerifier, NvidiaOptionsSchema } from './index.js';

export const nvidia: DeviceDescriptor<'nvidia', 'nvidia-gpu'> = {
  kind: 'device',
  name: 'nvidia',
  evidence: 'nvidia-gpu',
  pins: [[PinIds.NVIDIA_DEVICE_IDENTITY_CA], [PinIds.NVIDIA_CORIM_ROOT_CA]],
  options: NvidiaOptionsSchema,
  create: (o, deps) => nvidiaDeviceVerifier(o, deps),
};
