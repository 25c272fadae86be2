import { objectKey, type PolicyIssue } from '@sluice/policy';
import type { PolicyEngine } from './engine.js';
import type { PolicyStreams } from './policy-streams.js';
import type { PolicySource } from './source.js';

/** Per object key: sidecars it applies to, how many run it, the last NACK among them. */
export type ProgrammedCounts = Map<string, { selected: number; acked: number; nack: string | undefined }>;

/** The status of one policy object, as the status writer publishes it (`status.conditions`). */
export interface ObjectStatus {
  /** `Kind namespace/name`. */
  readonly key: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** metadata.generation of the object as the source has it now. */
  readonly generation: number | undefined;
  /** Accepted: the current generation is valid (schema, references). */
  readonly accepted: boolean;
  readonly acceptedReason: 'Valid' | 'Invalid';
  readonly acceptedMessage: string;
  /** Programmed: every sidecar it applies to runs the snapshot that contains its current generation. */
  readonly programmed: boolean;
  readonly programmedReason: 'Programmed' | 'Pending' | 'Rejected' | 'NoSidecars' | 'Invalid';
  readonly programmedMessage: string;
  readonly sidecarsSelected: number;
  readonly sidecarsAcked: number;
}

/**
 * Status of every object the source holds (valid or not): pure over the engine's compile result,
 * the source's objects and the streams' ACK state.
 */
export function statusView(source: PolicySource, engine: PolicyEngine, streams: PolicyStreams, peers?: ProgrammedCounts): ObjectStatus[] {
  const issuesByKey = new Map<string, PolicyIssue[]>();
  for (const i of engine.issues()) {
    const list = issuesByKey.get(i.object) ?? [];
    list.push(i);
    issuesByKey.set(i.object, list);
  }
  const stale = engine.policySet?.stale ?? new Set<string>();
  // This replica's sidecars, plus those other replicas report (see ack-reports.ts).
  const programmed: ProgrammedCounts = streams.programmed();
  for (const [key, c] of peers ?? []) {
    const e = programmed.get(key) ?? { selected: 0, acked: 0, nack: undefined };
    programmed.set(key, { selected: e.selected + c.selected, acked: e.acked + c.acked, nack: e.nack ?? c.nack });
  }
  const out: ObjectStatus[] = [];
  const seen = new Set<string>();
  for (const { object } of source.objects()) {
    const o = object as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown; generation?: unknown } } | null;
    if (o === null || typeof o !== 'object' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') continue;
    const namespace = typeof o.metadata.namespace === 'string' ? o.metadata.namespace : 'default';
    const key = objectKey({ kind: o.kind, metadata: { name: o.metadata.name, namespace } });
    if (seen.has(key)) continue;
    seen.add(key);
    const issues = issuesByKey.get(key) ?? [];
    const accepted = issues.length === 0;
    const p = programmed.get(key);
    let programmedReason: ObjectStatus['programmedReason'];
    let programmedMessage: string;
    if (!accepted) {
      programmedReason = 'Invalid';
      programmedMessage = stale.has(key) ? 'the last valid generation keeps serving' : 'not served';
    } else if (p === undefined || p.selected === 0) {
      programmedReason = 'NoSidecars';
      programmedMessage = 'no connected sidecar selects this object';
    } else if (p.nack !== undefined) {
      programmedReason = 'Rejected';
      programmedMessage = `sidecars refused the snapshot: ${p.nack}`;
    } else if (p.acked < p.selected) {
      programmedReason = 'Pending';
      programmedMessage = `${p.acked} of ${p.selected} sidecars run it`;
    } else {
      programmedReason = 'Programmed';
      programmedMessage = `${p.acked} of ${p.selected} sidecars run it`;
    }
    out.push({
      key,
      kind: o.kind,
      namespace,
      name: o.metadata.name,
      generation: typeof o.metadata.generation === 'number' ? o.metadata.generation : undefined,
      accepted,
      acceptedReason: accepted ? 'Valid' : 'Invalid',
      acceptedMessage: accepted ? 'valid' : issues.map((i) => `${i.path}: ${i.message}`).join('; '),
      programmed: programmedReason === 'Programmed',
      programmedReason,
      programmedMessage,
      sidecarsSelected: p?.selected ?? 0,
      sidecarsAcked: p?.acked ?? 0,
    });
  }
  return out;
}
