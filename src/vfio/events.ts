/** Events of the VFIO layer (part of the machine's one event union). */
export type VfioEvent =
  | { kind: "vfio-bind"; device: string; driver: string }
  | { kind: "vfio-open"; device: string; fd: number }
  | { kind: "vfio-close"; device: string }
  | {
      kind: "vfio-export";
      device: string;
      dmabuf: string;
      fd: number;
      region: number;
      size: string;
      state: string;
    }
  | { kind: "revoke"; device: string; dmabuf: string; cause: string }
  | { kind: "restore"; device: string; dmabuf: string; cause: string }
  | { kind: "cleanup"; device: string; dmabuf: string }
  | { kind: "vfio-release"; device: string; dmabuf: string }
  | { kind: "zap"; device: string; cause: string }
  | { kind: "config-write"; device: string; offset: number; size: number; value: number }
  | { kind: "power"; device: string; state: string }
  | { kind: "eventfd-signal"; device: string };
