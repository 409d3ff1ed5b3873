/* check_buf.c - the bounded buffer never passes its maximum. */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pushrelay.h"

START_TEST(test_append_within_bound)
{
	struct pr_buf b;

	pr_buf_init(&b, 8);
	ck_assert_int_eq(pr_buf_append(&b, "abcd", 4), PR_OK);
	ck_assert_int_eq(pr_buf_append(&b, "efgh", 4), PR_OK);
	ck_assert_str_eq(pr_buf_peek(&b), "abcdefgh");
	ck_assert_int_eq(pr_buf_append(&b, "i", 1), PR_ERR_LIMIT);
	ck_assert_uint_eq(pr_buf_avail(&b), 8);
	ck_assert_str_eq(pr_buf_peek(&b), "abcdefgh");
	pr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_consume_frees_room)
{
	struct pr_buf b;

	pr_buf_init(&b, 8);
	ck_assert_int_eq(pr_buf_append(&b, "abcdefgh", 8), PR_OK);
	pr_buf_consume(&b, 6);
	ck_assert_str_eq(pr_buf_peek(&b), "gh");
	ck_assert_int_eq(pr_buf_append(&b, "123456", 6), PR_OK);
	ck_assert_str_eq(pr_buf_peek(&b), "gh123456");
	ck_assert_uint_le(b.cap, 9);
	pr_buf_consume(&b, 100);
	ck_assert_uint_eq(pr_buf_avail(&b), 0);
	pr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_printf_bounded)
{
	struct pr_buf b;

	pr_buf_init(&b, 10);
	ck_assert_int_eq(pr_buf_printf(&b, "%d-%s", 42, "ok"), PR_OK);
	ck_assert_str_eq(pr_buf_peek(&b), "42-ok");
	ck_assert_int_eq(pr_buf_printf(&b, "%s", "too long!"), PR_ERR_LIMIT);
	ck_assert_str_eq(pr_buf_peek(&b), "42-ok");
	pr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_huge_request_rejected)
{
	struct pr_buf b;

	pr_buf_init(&b, 1024);
	ck_assert_int_eq(pr_buf_append(&b, "x", (size_t)-1), PR_ERR_LIMIT);
	ck_assert_ptr_null(b.data);
	pr_buf_cleanup(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_append_within_bound);
	tcase_add_test(tc, test_consume_frees_room);
	tcase_add_test(tc, test_printf_bounded);
	tcase_add_test(tc, test_huge_request_rejected);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
