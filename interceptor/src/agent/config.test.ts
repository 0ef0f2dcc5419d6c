import { ConfigError } from '../../../api/interception';
import { AGENT_DEFAULTS, validateAgentConfig } from './config';

describe('agent configuration', () => {
  test('the two required settings are enough; everything else has a production default', () => {
    const c = validateAgentConfig({ nodeName: 'n1', cgroupPath: '/sys/fs/cgroup/kubepods' });
    expect(c).toMatchObject({ ...AGENT_DEFAULTS, nodeName: 'n1', cgroupPath: '/sys/fs/cgroup/kubepods' });
    expect(c.failurePolicy).toBe('fail-closed');
    expect(c.sockmapAcceleration).toBe(true);
  });

  test('every problem is reported at once, in one error', () => {
    let err: unknown;
    try {
      validateAgentConfig({ cgroupPath: '', failurePolicy: 'maybe', metricsPort: 70000, sockmapAcceleration: 'yes', podWaitMs: -1, colour: 'blue' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const m = (err as Error).message;
    for (const part of ["unknown setting 'colour'", 'nodeName must be a non-empty string (set NODE_NAME', 'cgroupPath must be', 'failurePolicy must be "fail-closed" or "fail-open", got "maybe"', 'metricsPort must be', 'sockmapAcceleration must be true or false, got "yes"', 'podWaitMs must be']) {
      expect(m).toContain(part);
    }
  });

  test('a non-mapping is refused', () => {
    expect(() => validateAgentConfig('nodeName: x')).toThrow('it must be a mapping of settings');
  });

  test('nodePort: off when absent; validated in one pass when set', () => {
    expect(validateAgentConfig({ nodeName: 'n', cgroupPath: '/sys/fs/cgroup/kubepods' }).nodePort).toBeUndefined();
    const on = validateAgentConfig({ nodeName: 'n', cgroupPath: '/x', nodePort: { mode: 'dsr', devices: ['eth0'] } });
    expect(on.nodePort).toEqual({ mode: 'dsr', devices: ['eth0'], snatPortMin: 61000, snatPortMax: 65535, snatClosedGraceSeconds: 10, snatTimeWaitSeconds: 60 });
    expect(() => validateAgentConfig({ nodeName: 'n', cgroupPath: '/x', serviceLoadBalancing: false, nodePort: { mode: 'fast', devices: [], addresses: ['fd00::1'], snatPorts: '70000-1', colour: 1 } })).toThrow(
      /nodePort.mode must be one of snat, dsr, hybrid, got "fast".*nodePort.devices must list.*nodePort.addresses must list IPv4.*nodePort.snatPorts must be a range|unknown setting 'nodePort.colour'/s,
    );
    expect(() => validateAgentConfig({ nodeName: 'n', cgroupPath: '/x', nodePort: { mode: 'snat', devices: ['eth0'], snatTimeWaitSeconds: 900 } })).toThrow(
      "nodePort.snatTimeWaitSeconds must be whole seconds from 0 to 600 (the backends' TIME_WAIT), got 900",
    );
  });
});
