/** Events of the NVMe controller model (part of the machine's one event union). */
export type NvmeEvent =
  | {
      kind: "nvme-state";
      controller: string;
      state: "enabled" | "disabled" | "shutdown" | "fatal" | "subsystem-reset";
      detail: string;
    }
  | {
      kind: "nvme-doorbell";
      controller: string;
      /** "SQ1 tail", "CQ0 head". */
      doorbell: string;
      value: number;
      /** BDF of the function whose write rang it, or "cpu". */
      requester: string;
      accepted: boolean;
      detail?: string;
    }
  | {
      kind: "nvme-command";
      controller: string;
      sqid: number;
      cid: number;
      opcode: number;
      name: string;
      /** Where the 64-byte entry was fetched from: the CMB (inside the controller) or host memory (DMA). */
      fetchedFrom: "cmb" | "host";
      detail: string;
    }
  | {
      kind: "nvme-completion";
      controller: string;
      sqid: number;
      cqid: number;
      cid: number;
      status: string;
      sqhd: number;
      phase: number;
      /** Where the 16-byte entry was written. */
      address: string;
    };
