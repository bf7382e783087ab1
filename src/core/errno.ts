/**
 * Linux/x86 errno numbering (kernel-semantics §0.4). Kernel failures travel as values of
 * {@link KernelError}; the name and number are both kept so scripts can match either.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  ETIME: 62,
  EOVERFLOW: 75,
  EBADFD: 77,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  ETIMEDOUT: 110,
  EREMOTEIO: 121,
  ENOTSUPP: 524,
} as const;

export type ErrnoName = keyof typeof ERRNO;

const byNumber = new Map<number, ErrnoName>(
  (Object.entries(ERRNO) as [ErrnoName, number][]).map(([k, v]) => [v, k]),
);

export function errnoName(n: number): ErrnoName | undefined {
  return byNumber.get(Math.abs(n));
}

export function errnoNumber(name: string): number | undefined {
  return (ERRNO as Record<string, number>)[name];
}
