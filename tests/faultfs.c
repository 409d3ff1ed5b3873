/* faultfs.c - placeholder for the LD_PRELOAD write-fault shim. */
int faultfs_placeholder(void);
int faultfs_placeholder(void)
{
	return 0;
}
