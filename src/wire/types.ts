// The types of what the API answers, derived from its schemas (src/wire/schemas.ts): one
// definition, so that what a caller reads cannot drift from what the API sends. The model's own
// types (SitterStatus, ClusterState, HistoryEntry, PeerInfo) are written in src/model, which
// imports no room; test/wire/types.test.ts checks that they and their schemas agree.
import type { FromSchema } from './from-schema.js';
import type {
  adminResultSchema, configBodySchema, healthBodySchema, membershipResultSchema, onwmBodySchema, pgOpResultSchema, pgSettingRowSchema,
  raftMembersSchema, rebuildResultSchema, settingsResultSchema, shardReportSchema, versionedSettingsSchema, versionedStateSchema,
} from './schemas.js';

/** GET /shard: every peer of the state and every active peer, and every link of the chain. */
export type ShardReport = FromSchema<typeof shardReportSchema>;
/** One peer of GET /shard: its place in the state, and what its own /status said (null fields when unreachable). */
export type ShardPeer = ShardReport['peers'][number];
/** One replication link of the chain (upstream → downstream) in GET /shard. */
export type ShardLink = ShardReport['links'][number];

/** The committed cluster state with the store's version of it (the compare-and-set token). */
export type VersionedState = FromSchema<typeof versionedStateSchema>;
/** The answer to an admin write: what changed (one line, as the history records it), and the state and version it produced. */
export type AdminResult = FromSchema<typeof adminResultSchema>;
/** The answer to a rebuild request: the rebuild runs in the background; GET /status shows its progress. */
export type RebuildResult = FromSchema<typeof rebuildResultSchema>;
/** The Raft group's members: voters decide, learners only receive the log; addresses are id → host:port. */
export type RaftMembers = FromSchema<typeof raftMembersSchema>;
export type MembershipResult = FromSchema<typeof membershipResultSchema>;
/** The body of every health-check answer, 200 or 503 alike. */
export type HealthBody = FromSchema<typeof healthBodySchema>;

/** GET /config: the shard-wide PostgreSQL settings and their version (0 before the first write). */
export type WireVersionedSettings = FromSchema<typeof versionedSettingsSchema>;
/** POST /admin/config's answer; `restart` names the changed settings that wait for a restart. */
export type WireSettingsResult = FromSchema<typeof settingsResultSchema>;
/** POST /admin/config's body. */
export type SettingsChangeBody = FromSchema<typeof configBodySchema>;
/** One row of GET /pg-settings. */
export type WirePgSettingRow = FromSchema<typeof pgSettingRowSchema>;
/** POST /admin/reload-postgres and /admin/restart-postgres. */
export type PgOpResult = FromSchema<typeof pgOpResultSchema>;
/** POST /admin/onwm's mode: on, off, or config (remove the operator's override). */
export type OnwmMode = NonNullable<FromSchema<typeof onwmBodySchema>['mode']>;
