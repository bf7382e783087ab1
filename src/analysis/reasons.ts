/** Words for the verdict objects of p2pdma/ (the data stays in P2pReason; this is the text layer). */
import type { MapVerdict, P2pReason } from "../p2pdma/map-type.js";
import type { HostBridgeCheck } from "../p2pdma/whitelist.js";

export function describeHostBridgeCheck(c: HostBridgeCheck): string {
  if (c.ok)
    return `host bridge ${c.hostBridge} (identity ${c.identity} ${c.id}, ${c.entry}) is on the P2PDMA allow-list`;
  switch (c.why) {
    case "no-identity-device":
      return `host bridge ${c.hostBridge} has no identity device (first root-bus function is neither 00.0 nor a root port)`;
    case "not-listed":
      return `host bridge ${c.hostBridge} (identity ${c.identity} ${c.id}) is not on the P2PDMA allow-list`;
    case "requires-same-host-bridge":
      return `host bridge ${c.hostBridge} (${c.id}, ${c.entry}) allows P2P only between devices below it`;
  }
}

export function describeReason(r: P2pReason): string {
  switch (r.kind) {
    case "common-upstream-bridge":
      return `common upstream bridge ${r.ancestor} (${r.ancestorKind})`;
    case "no-common-upstream-bridge":
      return r.providerRoot === r.clientRoot
        ? `no common upstream bridge below host bridge ${r.providerRoot}`
        : `no common upstream bridge: provider under ${r.providerRoot}, client under ${r.clientRoot}`;
    case "acs-redirect":
      return `ACS ${r.ctrl.join("|")} enabled at ${r.at} (${r.side === "common" ? "the common bridge" : `${r.side} side`})`;
    case "cpu-allows-p2p":
      return `CPU ${r.cpu} supports P2P through the root complex (AMD Zen rule)`;
    case "cpu-does-not-allow-p2p":
      return `CPU ${r.cpu} is not AMD Zen or later, so the host-bridge allow-list decides`;
    case "host-bridge":
      return describeHostBridgeCheck(r.check);
  }
}

/** One line: the decisive rules of a verdict. */
export function verdictSummary(v: MapVerdict, self: boolean): string {
  if (self && v.type === "BUS_ADDR") return "same device";
  const common = v.reasons.find((r) => r.kind === "common-upstream-bridge");
  const acs = v.reasons.filter((r) => r.kind === "acs-redirect");
  const hb = v.reasons.filter((r) => r.kind === "host-bridge");
  const cpuOk = v.reasons.some((r) => r.kind === "cpu-allows-p2p");
  const parts: string[] = [];
  if (v.type === "BUS_ADDR" && common) return `${describeReason(common)}, no ACS redirect on the path`;
  if (common && acs.length)
    parts.push(`ACS redirect at ${acs.map((a) => a.at).join(", ")} sends traffic to the root complex`);
  else {
    const none = v.reasons.find((r) => r.kind === "no-common-upstream-bridge");
    if (none) parts.push(describeReason(none));
  }
  if (cpuOk) parts.push("allowed: AMD Zen CPU");
  else if (v.type === "NOT_SUPPORTED") {
    const failed = hb.find((r) => r.kind === "host-bridge" && !r.check.ok);
    if (failed) parts.push(describeReason(failed));
  } else parts.push("allowed: host bridge on the allow-list");
  return parts.join("; ");
}
