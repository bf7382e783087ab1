/** Generic VFIO_DEVICE_FEATURE rules (kernel-semantics §6.3, §6.4). */
import { KernelError } from "../core/errors.js";
import { VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET } from "./uapi/vfio.js";

/**
 * `vfio_check_feature(flags, argsz, supported_ops, minsz)`: 1 = go ahead, 0 = PROBE answered.
 * Failures throw -EINVAL.
 */
export function vfioCheckFeature(
  flags: number,
  dataLen: number,
  supportedOps: number,
  minDataLen: number,
): 0 | 1 {
  const ops = flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
  if (ops & ~supportedOps)
    throw new KernelError("EINVAL", "vfio_check_feature: operation not supported by the feature", "K-14");
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (!ops) throw new KernelError("EINVAL", "vfio_check_feature: neither GET nor SET", "K-18");
  if (dataLen < minDataLen)
    throw new KernelError("EINVAL", "vfio_check_feature: argsz too small for the feature", "K-25");
  return 1;
}
