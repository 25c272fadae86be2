/** The quota client's counters (global-limit credit over StreamQuota), exported as metrics. */
export interface QuotaStats {
  /** Credit requests sent. */
  readonly acquires: number;
  /** Units of credit granted. */
  readonly granted: number;
  /** Leases handed back. */
  readonly released: number;
  /** Units of unused credit taken back. */
  readonly returned: number;
  /** Requests with no answer or an unavailable store. */
  readonly unavailable: number;
  /** Requests sent again after a reconnect. */
  readonly resent: number;
  /** Requests given up. */
  readonly dropped: number;
}

export const NO_QUOTA_STATS: QuotaStats = Object.freeze({ acquires: 0, granted: 0, released: 0, returned: 0, unavailable: 0, resent: 0, dropped: 0 });
