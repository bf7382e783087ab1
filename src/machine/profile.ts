/**
 * The kernel a machine runs: CONFIG knobs and the variant flags of kernel-semantics §0.3, all
 * defaulting to Linux 6.19 as released. Scenario files set them under `kernel:`.
 */
import { HOST_BRIDGE_WHITELIST_6_19, type WhitelistEntry } from "../p2pdma/whitelist.js";

export interface KernelProfile {
  profile: "v6.19";
  /** CONFIG_PCI_P2PDMA. */
  pciP2pdma: boolean;
  /** CONFIG_VFIO_PCI_DMABUF (hidden, y when P2PDMA and dma-buf are on). */
  vfioPciDmabuf: boolean;
  /** CONFIG_DMABUF_MOVE_NOTIFY — Kconfig default n (§0.2). */
  moveNotify: boolean;
  sgChunk: "uint_max" | "page_aligned";
  iovaLinkOffset: "zero" | "cumulative";
  closeOrder: "disable_then_cleanup" | "cleanup_then_disable";
  revokeSemantics: "move_notify" | "revocable_wait";
  tphFeature: boolean;
  /** Which revision of the TPH series (tph-and-tlp §5.2): v9 checks the completer type first. */
  tphSeriesVersion: "v7" | "v9";
  memattrFeature: boolean;
  revokeFeature: boolean;
  acsEgressModel: boolean;
  iommuNoPermMap: "einval" | "silent";
  /** KMALLOC_MAX_SIZE (bounds memdup_user). */
  kmallocMaxSize: number;
  whitelist: readonly WhitelistEntry[];
}

export const DEFAULT_KERNEL: KernelProfile = {
  profile: "v6.19",
  pciP2pdma: true,
  vfioPciDmabuf: true,
  moveNotify: false,
  sgChunk: "uint_max",
  iovaLinkOffset: "zero",
  closeOrder: "disable_then_cleanup",
  revokeSemantics: "move_notify",
  tphFeature: false,
  tphSeriesVersion: "v7",
  memattrFeature: false,
  revokeFeature: false,
  acsEgressModel: false,
  iommuNoPermMap: "einval",
  kmallocMaxSize: 1 << 22,
  whitelist: HOST_BRIDGE_WHITELIST_6_19,
};

/** The profile in words, for the demo and reports. */
export function describeProfile(k: KernelProfile): string {
  const flags = [
    `CONFIG_PCI_P2PDMA=${k.pciP2pdma ? "y" : "n"}`,
    `CONFIG_DMABUF_MOVE_NOTIFY=${k.moveNotify ? "y" : "n"}`,
    `CONFIG_VFIO_PCI_DMABUF=${k.vfioPciDmabuf ? "y" : "n"}`,
  ];
  const variants = (
    [
      ["sgChunk", "uint_max"],
      ["iovaLinkOffset", "zero"],
      ["closeOrder", "disable_then_cleanup"],
      ["revokeSemantics", "move_notify"],
    ] as const
  )
    .filter(([key, def]) => k[key] !== def)
    .map(([key]) => `${key}=${k[key]}`);
  for (const f of ["tphFeature", "memattrFeature", "revokeFeature", "acsEgressModel"] as const)
    if (k[f]) variants.push(f);
  return `Linux ${k.profile.slice(1)} semantics, ${flags.join(", ")}${variants.length ? `; variants: ${variants.join(", ")}` : "; no post-6.19 variants"}`;
}
