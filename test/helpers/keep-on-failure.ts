// A test that fails keeps its shard's directory (logs and data) for a post-mortem: the failure
// message names the directory ("logs in ..."), and without this the teardown removed it. Set for
// the rest of the failing file's worker only (each test file runs in its own process).
import { afterEach } from 'vitest';

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') process.env['MANATEE_KEEP_SHARD'] = '1';
});
