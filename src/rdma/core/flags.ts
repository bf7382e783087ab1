import { KernelError } from "../../core/errors.js";
import { hex } from "../../core/hex.js";
import type { FlagsAttr } from "./device.js";

/**
 * `uverbs_get_flags32` (§6.2): an absent attribute reads as 0; the attribute must be 4 or 8 bytes;
 * a bit outside `allowed` → -EINVAL.
 */
export function getFlags32(attr: FlagsAttr | undefined, allowed: number, what: string): number {
  if (!attr) return 0;
  let v: bigint;
  if (attr.len === 8) v = attr.value;
  else if (attr.len === 4) v = attr.value & 0xffff_ffffn;
  else throw new KernelError("EINVAL", `${what}: flags attribute of ${attr.len} bytes`, "DD-25");
  const extra = v & ~BigInt(allowed >>> 0);
  if (extra) throw new KernelError("EINVAL", `${what}: unsupported flag bits`, "DD-25", hex(extra));
  return Number(v);
}
