import assert from "node:assert/strict";
import { test } from "node:test";
import type { KernelError } from "../../src/core/errors.js";
import { P2pdma } from "../../src/p2pdma/index.js";
import { cpuIntel, specF } from "../helpers/spec-f.js";

const errno = (name: string) => (e: KernelError) => e.errnoName === name;

test("§2.2 pcim_p2pdma_init is idempotent; providers only for MEM BARs; bus offset per BAR", () => {
  const { dev } = specF();
  const lines: string[] = [];
  const p2p = new P2pdma({ cpu: cpuIntel, log: (l) => lines.push(l) });
  assert.equal(p2p.provider(dev.EPa, 0), null, "before init");
  assert.match(lines[0], /WARN/);
  p2p.init(dev.EPa);
  const s = p2p.state(dev.EPa);
  p2p.init(dev.EPa);
  assert.equal(p2p.state(dev.EPa), s);
  assert.equal(p2p.provider(dev.EPa, 0)?.busOffset, 0n);
  assert.equal(p2p.provider(dev.EPa, 1), null, "upper half of the 64-bit BAR0");
  assert.equal(p2p.provider(dev.EPa, 3), null, "IO BAR");
  assert.equal(p2p.provider(dev.EPa, 5), null, "unimplemented");
  assert.equal(p2p.busAddrMap(p2p.provider(dev.EPa, 4)!, 0xf100_0010n), 0xf100_0010n);
  assert.throws(() => new P2pdma({ cpu: cpuIntel, enabled: false }).init(dev.EPa), errno("EOPNOTSUPP"));
});

test("§2.2 pci_p2pdma_map_type: NOT_SUPPORTED without the provider's p2pdma state", () => {
  const { dev } = specF();
  const p2p = new P2pdma({ cpu: cpuIntel });
  p2p.init(dev.EPa);
  const prov = p2p.provider(dev.EPa, 0)!;
  p2p.release(dev.EPa);
  assert.equal(p2p.mapType(prov, dev.EPb), "NOT_SUPPORTED");
});

test("§2.3 p2pmem: add_resource checks, 2 MiB alignment, alloc/free, virt_to_bus, publish and find", () => {
  const { dev } = specF();
  const p2p = new P2pdma({ cpu: cpuIntel, random: () => 0.99 });
  assert.throws(() => p2p.addResource(dev.EPa, 3, 0n, 0n), errno("EINVAL"), "IO BAR");
  assert.throws(() => p2p.addResource(dev.EPa, 0, 0n, 16n << 20n), errno("EINVAL"), "offset beyond BAR");
  assert.throws(
    () => p2p.addResource(dev.EPa, 0, 16n << 20n, 4096n),
    errno("EINVAL"),
    "size + offset beyond BAR",
  );
  assert.throws(
    () => p2p.addResource(dev.EPa, 2, 0n, 0n),
    errno("EINVAL"),
    "256-byte BAR is not 2 MiB aligned",
  );
  p2p.addResource(dev.EPa, 0, 4n << 20n, 0n);
  assert.equal(p2p.available(dev.EPa), 4n << 20n);
  const a = p2p.allocP2pmem(dev.EPa, 5000n)!;
  const b = p2p.allocP2pmem(dev.EPa, 4096n)!;
  assert.equal(b - a, 8192n, "page granule");
  assert.equal(p2p.virtToBus(dev.EPa, a), 0x80_0000_0000n);
  assert.equal(p2p.virtToBus(dev.EPa, 0n), 0n);
  assert.equal(p2p.allocP2pmem(dev.EPa, 8n << 20n), null, "exhausted");
  p2p.freeP2pmem(dev.EPa, a);
  assert.equal(p2p.available(dev.EPa), (4n << 20n) - 4096n);
  assert.equal(p2p.allocP2pmem(dev.EPa, 8192n), a, "freed space is reused");
  assert.equal(p2p.hasP2pmem(dev.EPa), false);
  p2p.publish(dev.EPa, true);
  assert.equal(p2p.hasP2pmem(dev.EPa), true);
  // find: the closest published provider to all clients
  assert.equal(p2p.findMany([dev.EPa], [dev.EPb]), dev.EPa);
  assert.equal(p2p.findMany([dev.EPa], [dev.EPc]), null, "unreachable client");
});
