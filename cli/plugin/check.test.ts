import { drift } from './check';

describe('drift between the generated and the live webhook configuration', () => {
  const expected = { webhooks: [{ name: 'a', failurePolicy: 'Fail', rules: [{ operations: ['CREATE'] }] }] };

  test('defaults the apiserver adds are not drift', () => {
    expect(drift(expected, { webhooks: [{ name: 'a', failurePolicy: 'Fail', matchPolicy: 'Equivalent', rules: [{ operations: ['CREATE'], scope: '*' }] }] })).toEqual([]);
  });

  test('every changed, missing or extra element is named by its path', () => {
    expect(drift(expected, { webhooks: [{ name: 'a', failurePolicy: 'Ignore', rules: [{ operations: ['CREATE', 'UPDATE'] }] }] })).toEqual([
      '.webhooks[0].failurePolicy: "Ignore" (expected "Fail")',
      '.webhooks[0].rules[0].operations: ["CREATE","UPDATE"] (expected ["CREATE"])',
    ]);
    expect(drift(expected, { webhooks: [] })).toEqual(['.webhooks: [] (expected [{"name":"a","failurePolicy":"Fail","rules":[{"operations":["CREATE"]}]}])']);
    expect(drift(expected, {})).toEqual(['.webhooks: undefined (expected [{"name":"a","failurePolicy":"Fail","rules":[{"operations":["CREATE"]}]}])']);
  });
});
