import type { Command } from 'commander';

// placeholder: the owner of this command replaces this file
export function registerAssign(program: Command): void {
  program.command('assign').description('(not implemented yet)').action(() => {
    throw new Error('assign is not implemented yet');
  });
}
