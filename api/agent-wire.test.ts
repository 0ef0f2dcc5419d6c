import * as fs from 'fs';
import * as path from 'path';
import { validateCniRequest } from '../interceptor/src/agent/registrar';
import { CNI_ERRORS, CNI_PATHS, CniReply, CniRequest, DEFAULT_AGENT_SOCKET } from './agent-wire';

const wire = JSON.parse(fs.readFileSync(path.join(__dirname, 'agent-wire.json'), 'utf8'));

describe('the agent wire API: TypeScript against api/agent-wire.json (Go is checked by interceptor/cni/wire_test.go)', () => {
  test('socket, paths and error codes are the fixture\'s', () => {
    expect(DEFAULT_AGENT_SOCKET).toBe(wire.defaultSocket);
    expect(CNI_PATHS).toEqual(wire.paths);
    expect(CNI_ERRORS).toEqual(wire.errorCodes);
  });

  test('the fixture request is one the agent accepts, field for field', () => {
    const req: CniRequest = wire.request;
    const { cniVersion, ...fields } = req; // informational: the agent does not use it
    expect(cniVersion).toBe('1.0.0');
    expect(validateCniRequest(req)).toEqual(fields);
  });

  test('the fixture replies have the shapes the agent sends', () => {
    const reply: CniReply = wire.reply;
    expect(Object.keys(reply).sort()).toEqual(['netnsCookie', 'reason', 'registered']);
    expect(Object.keys(wire.errorReply).sort()).toEqual(['code', 'details', 'message']);
  });
});
