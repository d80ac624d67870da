// A peer as the cluster state names it, and the one rule for peer ids.
//
// A peer id becomes PostgreSQL's application_name (63 bytes at most) and a name in
// synchronous_standby_names, the CN and a URI alternative name of the peer's certificate (with no
// escaping), and a field of the configuration file. One rule serves them all: 1-63 characters of
// [A-Za-z0-9_.-], starting with a letter or digit.

export type PeerId = string;

/** One member of the shard as the cluster state names it. Peers are compared by `id` alone. */
export interface PeerInfo {
  readonly id: PeerId;
  /** postgres://user@host:port/db of this peer's PostgreSQL. */
  readonly pgUrl: string;
  /** http://host:port of this peer's HTTP API (status, backup server). */
  readonly apiUrl: string;
  readonly host: string;
}

/** The rule for peer ids as a JSON-schema pattern (configuration file, API schemas). */
export const PEER_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$';
const PEER_ID_RE = new RegExp(PEER_ID_PATTERN);

/** What the rule expects, for error messages. */
export const PEER_ID_EXPECTED = 'expected 1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit';

export function isPeerId(value: unknown): value is PeerId {
  return typeof value === 'string' && PEER_ID_RE.test(value);
}

/**
 * A peer's tags (its configuration's `tags`, carried in its session): what the rules may choose
 * it for, and whether load balancers send it readers. Absent fields mean the defaults.
 */
export interface PeerTags {
  /** Never chosen as sync or primary (a reporting replica, a backup host). Default false. */
  readonly nofailover?: boolean;
  /** GET /replica answers 503 on this peer, so that load balancers send it no readers. Default false. */
  readonly noloadbalance?: boolean;
  /** Preferred order when the sync is chosen: higher first, ties by the chain's order. Default 0. */
  readonly priority?: number;
}

export const PEER_TAG_PRIORITY_MIN = -1000;
export const PEER_TAG_PRIORITY_MAX = 1000;
const PEER_TAG_KEYS = ['nofailover', 'noloadbalance', 'priority'] as const;

/** Problems with a tags object, each naming its field under `where` ("tags.priority: ..."). */
export function peerTagsProblems(value: unknown, where: string): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return [`${where}: must be an object {nofailover?, noloadbalance?, priority?} (got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value})`];
  }
  const v = value as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(v)) {
    if (!(PEER_TAG_KEYS as readonly string[]).includes(key)) problems.push(`${where}.${key}: is not a known tag (expected one of ${PEER_TAG_KEYS.join(', ')})`);
  }
  for (const key of ['nofailover', 'noloadbalance'] as const) {
    if (v[key] !== undefined && typeof v[key] !== 'boolean') problems.push(`${where}.${key}: must be true or false (got ${JSON.stringify(v[key])})`);
  }
  const p = v.priority;
  if (p !== undefined && !(Number.isInteger(p) && (p as number) >= PEER_TAG_PRIORITY_MIN && (p as number) <= PEER_TAG_PRIORITY_MAX)) {
    problems.push(`${where}.priority: must be an integer from ${PEER_TAG_PRIORITY_MIN} to ${PEER_TAG_PRIORITY_MAX} (got ${JSON.stringify(p)})`);
  }
  return problems;
}

/** The stored form: only the tags that are set, in a fixed order; undefined when none is. Call after peerTagsProblems() is empty. */
export function canonicalPeerTags(t: PeerTags | undefined): PeerTags | undefined {
  if (t === undefined) return undefined;
  const out: { nofailover?: boolean; noloadbalance?: boolean; priority?: number } = {};
  if (t.nofailover !== undefined) out.nofailover = t.nofailover;
  if (t.noloadbalance !== undefined) out.noloadbalance = t.noloadbalance;
  if (t.priority !== undefined) out.priority = t.priority;
  return Object.keys(out).length === 0 ? undefined : out;
}

/** "nofailover, priority=5", or "" when no tag is set. */
export function describePeerTags(t: PeerTags | undefined): string {
  if (t === undefined) return '';
  const parts: string[] = [];
  if (t.nofailover === true) parts.push('nofailover');
  if (t.noloadbalance === true) parts.push('noloadbalance');
  if (t.priority !== undefined && t.priority !== 0) parts.push(`priority=${t.priority}`);
  return parts.join(', ');
}
