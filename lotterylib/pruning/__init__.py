"""The pruning wing: the mask types and their files (`masks`), the one accept-or-revert search loop
(`search`) and its two strategies, s-pruning of heads and MLPs (`structured`) and global magnitude pruning
of weights (`magnitude`), and the good / random / bad subnetworks drawn from their masks (`subnetworks`).

Imports only `core`."""
