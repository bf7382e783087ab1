/** What the RDMA layer reports to the machine's event log (one kind, `rdma`, with an operation). */
export type RdmaOp =
  | "ib-device-add"
  | "ib-device-remove"
  | "dd-probe"
  | "dd-probe-failed"
  | "dd-remove"
  | "dd-shutdown"
  | "dd-bind"
  | "dd-unbind"
  | "dd-reg"
  | "dd-unreg"
  | "mkey-create"
  | "mkey-disable"
  | "mkey-destroy"
  | "umem-map"
  | "umem-unmap"
  | "umem-revoke"
  | "umem-release"
  | "mr-reg"
  | "mr-dereg"
  | "mr-revoke"
  | "mr-invalidate"
  | "mr-fault"
  | "dd-list-add"
  | "dd-list-del"
  | "fw-cmd";

export interface RdmaEvent {
  kind: "rdma";
  op: RdmaOp;
  /** The IB device, DMA PF or umem the event is about. */
  dev: string;
  detail?: string;
  /** Produced under the projected `ddRevocablePinned` knob. */
  projected?: true;
}
