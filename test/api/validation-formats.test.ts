// A route with `format: 'uuid'` (the backup server's /backup/jobs/:id) compiles with the API's
// validator: strict Ajv refuses unknown formats, which once stopped a zfs sitter from starting.
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { createValidatorCompiler } from '../../src/api/validation.js';

describe('the API validator compiler', () => {
  it('knows the uuid format: a good id passes and a bad one is a 400 naming the field', async () => {
    const app = Fastify();
    app.setValidatorCompiler(createValidatorCompiler());
    app.get<{ Params: { id: string } }>('/jobs/:id', {
      schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', format: 'uuid' } }, additionalProperties: false } },
    }, (req) => ({ id: req.params.id }));
    await app.ready();
    const good = await app.inject({ method: 'GET', url: '/jobs/0b7e2a8c-1f3d-4c5e-9a6b-7d8e9f0a1b2c' });
    expect(good.statusCode).toBe(200);
    const bad = await app.inject({ method: 'GET', url: '/jobs/not-a-uuid' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toMatch(/id/);
    await app.close();
  });
});
