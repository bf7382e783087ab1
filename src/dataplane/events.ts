/** Events of the data plane (part of the machine's one event union). */

/** How a transfer (or one of its TLPs) ended. */
export type DmaStatus =
  /** Successful Completion: every byte reached its target. */
  | "SC"
  /** Unsupported Request: nothing decodes the address, or a function/bridge on the way refuses it. */
  | "UR"
  /** Completer Abort: the target refused the access. */
  | "CA"
  /** The initiator's IOMMU domain has no (or no permitted) translation. */
  | "iommu-fault"
  /** A port without End-End TLP Prefix support dropped the TLP (TPH-30). */
  | "tlp-prefix-blocked"
  /** The initiator's Bus Master Enable is clear: it issues nothing. */
  | "bus-master-disabled";

export type DataplaneEvent =
  | {
      kind: "dma-write" | "dma-read" | "mmio-write" | "mmio-read";
      /** BDF, or "cpu" for a CPU load/store. */
      initiator: string;
      requesterId: string;
      address: string;
      length: number;
      addressKind: string;
      status: DmaStatus;
      /** "0000:04:00.0 BAR2+0x1000", "RAM 0x1000", or "none". */
      target: string;
      bytesDelivered: number;
      /** TLP requests issued. */
      tlps: number;
      route: string;
    }
  | {
      kind: "tlp";
      link: string;
      direction: "up" | "down";
      mode: "nfm" | "fm";
      /** The analyzer-style one-line summary. */
      summary: string;
      /** Prefixes and header in wire bytes (payload left out). */
      header: string;
    }
  | {
      kind: "dma-fault";
      initiator: string;
      address: string;
      status: DmaStatus;
      reason: string;
      /** Where the TLP stopped (BDF or host bridge). */
      at: string;
      /** TLPs of the transfer that failed this way. */
      count: number;
    };
