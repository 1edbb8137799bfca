#!/usr/bin/perl
# write_mmdb.pl - writes small MaxMind DB files in the free layouts that
# resolve/dc_ipdb.c reads, for tests/integration/ipdb.sh and sender_views.sh.
#
#   perl write_mmdb.pl LAYOUT FILE EPOCH [NETWORKS]
#
# LAYOUT: geolite2-asn, geolite2-asn-changed, geolite2-country, ipinfo-lite,
# ipinfo-senders (IPinfo Lite's layout, one network per IP of sender_views.sh);
# for bench/resolve.sh, bench-asn and bench-country: the GeoLite2 layouts
# with NETWORKS networks (default 50000), generated, see bench_nets below.
# EPOCH sets the metadata build_epoch (a new release of a file).  Networks
# are the documentation ranges the test's records use (192.0.2.0/24,
# 2001:db8::/32), so reserved networks are kept (remove_reserved_networks 0).
# Every tree is IPv6 with IPv4 networks in ::/96, as the real files are.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my ($layout, $file, $epoch, $networks) = @ARGV;
die "usage: write_mmdb.pl LAYOUT FILE EPOCH [NETWORKS]\n" unless defined $epoch;

my %types = (
	autonomous_system_number       => 'uint32',
	autonomous_system_organization => 'utf8_string',
	country                        => 'map',
	registered_country             => 'map',
	iso_code                       => 'utf8_string',
	names                          => 'map',
	en                             => 'utf8_string',
	geoname_id                     => 'uint32',
	asn                            => 'utf8_string',
	as_name                        => 'utf8_string',
	as_domain                      => 'utf8_string',
	country_code                   => 'utf8_string',
	continent                      => 'utf8_string',
	continent_code                 => 'utf8_string',
);
# IPinfo Lite's "country" is the country's name, not a map.
$types{country} = 'utf8_string' if $layout =~ /^ipinfo-/;

my (%type, $size, @nets);
if ($layout eq 'geolite2-asn' || $layout eq 'geolite2-asn-changed') {
	my $changed = $layout eq 'geolite2-asn-changed';
	%type = (database_type => 'GeoLite2-ASN');
	$size = 24;
	@nets = (
		[ '192.0.2.0/28', { autonomous_system_number => $changed ? 64600 : 64500,
			autonomous_system_organization => $changed ? 'Changed Net' : "Example Mail GmbH \x{e4}" } ],
		[ '192.0.2.16/28', { autonomous_system_number => 64501, autonomous_system_organization => 'Relay Org' } ],
		[ '2001:db8::/48', { autonomous_system_number => 64502, autonomous_system_organization => 'V6 Net' } ],
	);
} elsif ($layout eq 'geolite2-country') {
	%type = (database_type => 'GeoLite2-Country');
	$size = 28;
	@nets = (
		[ '192.0.2.0/27', { country => { iso_code => 'DE', geoname_id => 2921044, names => { en => 'Germany' } },
			registered_country => { iso_code => 'AT', names => { en => 'Austria' } } } ],
		# no country, only the registered one (the fallback)
		[ '2001:db8::/32', { registered_country => { iso_code => 'NL', names => { en => 'Netherlands' } } } ],
	);
} elsif ($layout eq 'ipinfo-lite') {
	%type = (database_type => 'ipinfo lite');
	$size = 32;
	@nets = (
		[ '192.0.2.0/27', { asn => 'AS64510', as_name => 'Info Net', as_domain => 'Example.NET',
			country => 'France', country_code => 'FR', continent => 'Europe', continent_code => 'EU' } ],
		[ '2001:db8::/32', { asn => 'AS64511', as_name => 'Info V6', as_domain => 'v6.example.org',
			country => 'Japan', country_code => 'JP', continent => 'Asia', continent_code => 'AS' } ],
	);
} elsif ($layout eq 'ipinfo-senders') {
	%type = (database_type => 'ipinfo lite');
	$size = 32;
	my $net = sub {  # NETWORK ASN AS_NAME AS_DOMAIN COUNTRY_CODE
		[ $_[0], { asn => $_[1], as_name => $_[2], as_domain => $_[3],
			country => "Country $_[4]", country_code => $_[4], continent => 'Earth', continent_code => 'EA' } ]
	};
	@nets = (
		$net->('198.51.100.1/32', 'AS64520', 'Hosting Co Net', 'hosting.example', 'DE'),
		$net->('198.51.100.2/32', 'AS64521', 'Unmapped Net', 'unmapped.example', 'FR'),
		$net->('198.51.100.3/32', 'AS64520', 'Hosting Co Net', 'HOSTING.Example.', 'DE'),
		$net->('198.51.100.4/32', 'AS64520', 'Hosting Co Net', 'hosting.example', 'DE'),
		$net->('198.51.100.5/32', 'AS64522', 'Org Net', 'orgnet.example', 'NL'),
		$net->('2001:db8:5::/48', 'AS64530', 'Six Net', 'six.example', 'JP'),
	);
} elsif ($layout eq 'bench-asn' || $layout eq 'bench-country') {
	%type = (database_type => $layout eq 'bench-asn' ? 'GeoLite2-ASN' : 'GeoLite2-Country');
	$size = $layout eq 'bench-asn' ? 24 : 28;
	@nets = bench_nets($layout eq 'bench-asn', $networks // 50000);
} else {
	die "write_mmdb.pl: unknown layout $layout\n";
}

# NETWORKS networks for bench/resolve.sh, whose IPs are 10.1.0.0 upwards:
#   - the /24s of 10.1.0.0/14, but every tenth (those IPs are in no network);
#   - IPv4 networks of /17 to /24 spread over 1.0.0.0-223.255.255.255 outside
#     10/8 and 127/8, one per equal slot, and one IPv6 /32 to /48 for every
#     ninth, so the tree is as deep and wide as a real file's;
#   - about 20 networks per AS (some AS names with non-ASCII letters), 60
#     countries.
sub bench_nets {
	my ($asn, $count) = @_;
	my @cc = qw(US DE FR GB NL JP CN BR IN RU IT ES CA AU SE PL CH AT BE DK FI NO IE PT CZ
		HU RO BG GR TR UA IL ZA EG NG KE MX AR CL CO PE KR TW HK SG MY TH VN ID PH
		NZ IS LU LT LV EE SK SI HR RS);
	my $data = sub {
		my ($k) = @_;
		if ($asn) {
			my $a = 1 + ($k * 7919) % ($count / 20 + 1);
			return { autonomous_system_number => 1000 + $a,
				autonomous_system_organization => $a % 50 ? "Bench Networks $a" : "Bench R\x{e9}seaux $a" };
		}
		my $c = $cc[ $k % @cc ];
		return { country => { iso_code => $c, geoname_id => 1000 + $k % @cc, names => { en => "Country $c" } },
			registered_country => { iso_code => $c, names => { en => "Country $c" } } };
	};
	my (@n, $k);
	for my $i (0 .. 4 * 256 - 1) {
		last if @n >= $count;
		next if $i % 10 == 9;
		push @n, [ sprintf('10.%d.%d.0/24', 1 + int($i / 256), $i % 256), $data->($k++) ];
	}
	my $left = $count - @n;
	my $v6 = int($left / 9);
	my $v4 = $left - $v6;
	my ($lo, $hi) = (1 << 24, 224 << 24);
	my $slot = int(($hi - $lo) / ($v4 || 1));
	for my $j (0 .. $v4 - 1) {
		my $base = $lo + $j * $slot;
		my $len = 17 + $j % 8;
		my $span = 1 << (32 - $len);
		$len++, $span >>= 1 while $span > $slot && $len < 32;
		$base = int(($base + $span - 1) / $span) * $span; # aligned
		my $top = $base >> 24;
		next if $top == 10 || $top == 127 || $base + $span > $hi;
		push @n, [ join('.', unpack('C4', pack('N', $base))) . "/$len", $data->($k++) ];
	}
	for my $j (0 .. $v6 - 1) {
		push @n, [ sprintf('2%03x:%04x::/%d', ($j >> 16) & 0xfff, $j & 0xffff, 32 + 8 * ($j % 3)), $data->($k++) ];
	}
	return @n;
}

my $tree = MaxMind::DB::Writer::Tree->new(
	ip_version               => 6,
	record_size              => $size,
	database_type            => $type{database_type},
	languages                => ['en'],
	description              => { en => "dmarc-collector test file ($layout)" },
	remove_reserved_networks => 0,
	map_key_type_callback    => sub { $types{ $_[0] } // die "write_mmdb.pl: no type for key $_[0]\n" },
);
$tree->_set_build_epoch($epoch);
$tree->insert_network(@$_) for @nets;
open my $fh, '>:raw', $file or die "write_mmdb.pl: $file: $!\n";
$tree->write_tree($fh);
close $fh or die "write_mmdb.pl: $file: $!\n";
