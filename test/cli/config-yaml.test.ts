// manatee-adm config edit's file formats: the flat YAML mapping (written and read back without a
// YAML library) and JSON, with an error naming the line for what they cannot hold.
import { describe, expect, it } from 'vitest';
import { parseAssignment, settingsFromJson, settingsFromYaml, settingsToYaml } from '../../src/cli/adm/config.js';

describe('config edit formats', () => {
  it('YAML round-trips values that need quotes (spaces, quotes, booleans, #)', () => {
    const settings = { a: '64MB', b: "it's a # value", c: 'on', d: '' , e: '%m [%p] ' };
    expect(settingsFromYaml(settingsToYaml(settings))).toEqual(settings);
  });

  it('YAML accepts comments, double quotes and lower-cases names', () => {
    expect(settingsFromYaml('# c\nWork_Mem: 8MB  # trailing\nx: "a\\tb"\n')).toEqual({ work_mem: '8MB', x: 'a\tb' });
  });

  it('YAML errors name the line', () => {
    expect(() => settingsFromYaml('a: 1\n- b\n')).toThrow(/line 2: expected "name: value"/);
    expect(() => settingsFromYaml("a: 'open\n")).toThrow(/line 1: unterminated quoted value/);
    expect(() => settingsFromYaml('a: "open\n')).toThrow(/line 1: unterminated quoted value/);
    expect(() => settingsFromYaml('a: 1\nA: 2\n')).toThrow(/line 2: a is set twice/);
  });

  it('JSON takes strings, numbers and booleans, and nothing else', () => {
    expect(settingsFromJson('{"work_mem":"8MB","max_connections":200,"fsync":true}')).toEqual({ work_mem: '8MB', max_connections: '200', fsync: 'true' });
    expect(() => settingsFromJson('{')).toThrow(/not JSON/);
    expect(() => settingsFromJson('[]')).toThrow(/expected a JSON object/);
    expect(() => settingsFromJson('{"a":{}}')).toThrow(/a: expected a string, number or boolean/);
  });

  it('name=value keeps what follows the first =', () => {
    expect(parseAssignment('log_line_prefix=%m = %p')).toEqual(['log_line_prefix', '%m = %p']);
    expect(() => parseAssignment('=1')).toThrow(/is not name=value/);
    expect(() => parseAssignment('work_mem')).toThrow(/is not name=value/);
  });
});
