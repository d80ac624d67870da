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
