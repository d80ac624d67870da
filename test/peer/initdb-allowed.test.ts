// A primary with an empty data directory creates a database only at the cluster's setup
// (src/peer/facts.ts initdbAllowed); every other case names why not.
import { describe, expect, it } from 'vitest';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';
import { FactsKeeper, initdbAllowed, NO_FACTS, type LocalFacts } from '../../src/peer/facts.js';

function peer(id: string): PeerInfo {
  return { id, host: id, pgUrl: `postgres://${id}:5432/postgres`, apiUrl: `http://${id}:5433` };
}

const SETUP: ClusterState = { generation: 1, primary: peer('a'), sync: peer('b'), async: [], deposed: [], initWal: '0/0' };

function facts(f: LocalFacts = NO_FACTS): FactsKeeper {
  return new FactsKeeper({ where: '/data/sitter-facts.json', read: () => Promise.resolve(f), write: () => Promise.resolve() }, f);
}

describe('initdbAllowed', () => {
  it('allows the primary of the cluster\'s setup with no data and no initdb before', () => {
    expect(initdbAllowed({ state: SETUP, selfId: 'a', hasPreviousData: false, facts: facts() })).toBe(true);
  });

  it('refuses, naming why, an unknown state, another primary, a later generation, previous data and an earlier initdb', () => {
    expect(initdbAllowed({ state: null, selfId: 'a', hasPreviousData: false, facts: facts() })).toBe('the cluster state is unknown');
    expect(initdbAllowed({ state: SETUP, selfId: 'b', hasPreviousData: false, facts: facts() })).toBe('a is the primary, not me');
    expect(initdbAllowed({ state: { ...SETUP, generation: 2, initWal: '0/100' }, selfId: 'a', hasPreviousData: false, facts: facts() }))
      .toBe("generation 2 (initWal 0/100) is not the cluster's setup: my data was lost and the sync holds it");
    expect(initdbAllowed({ state: { ...SETUP, initWal: '0/100' }, selfId: 'a', hasPreviousData: false, facts: facts() })).toMatch(/is not the cluster's setup/);
    expect(initdbAllowed({ state: SETUP, selfId: 'a', hasPreviousData: true, facts: facts() })).toBe('this peer had a database when the sitter started, and it is gone');
    expect(initdbAllowed({ state: SETUP, selfId: 'a', hasPreviousData: false, facts: facts({ rebuiltFrom: null, initdbDone: true }) }))
      .toBe('this peer created its database before (/data/sitter-facts.json), and it is gone');
  });
});
