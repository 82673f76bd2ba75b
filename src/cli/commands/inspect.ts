import type { Command } from 'commander';

// placeholder: the owner of this command replaces this file
export function registerInspect(program: Command): void {
  program.command('inspect').description('(not implemented yet)').action(() => {
    throw new Error('inspect is not implemented yet');
  });
}
