/* placeholder replaced by the collector module */
int main(void) { return 2; }
