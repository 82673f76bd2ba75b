import type { Command } from 'commander';

// placeholder: the owner of this command replaces this file
export function registerDemo(program: Command): void {
  program.command('demo').description('(not implemented yet)').action(() => {
    throw new Error('demo is not implemented yet');
  });
}
